// io.h - reading inputs and writing outputs the way every subcommand should:
// "-" means stdin, and a failed write is an error, never a silent exit 0.
#ifndef BN_IO_H
#define BN_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_text.h" // bn_buf

struct cJSON;

// Reads a whole file ("-": stdin) into a malloc'd buffer with a NUL after its
// *len bytes. Returns 0, or prints one error line and returns 1 (unreadable,
// over 64 MiB, out of memory).
int bn_read_input(const char *path, char **out, size_t *len);
// bn_read_input for a prompt: also refuses a NUL byte (it is not text), and
// drops one newline at the end, as llama.cpp's -f does.
int bn_read_prompt_file(const char *path, char **out);

// Writes len bytes to stdout and flushes them now (streamed text). Returns 0, or
// -1 with errno set when stdout cannot take them (a full disk, a closed pipe).
int bn_write_stdout(const char *text, size_t len);

// Flushes stdout; on a write error, now or earlier, prints one error line and
// returns 1 (main() turns it into the exit status), else 0.
int bn_finish_stdout(void);

// Makes sure file descriptors 0-2 are open (see io.c); call first in main().
void bn_guard_std_fds(void);

// Prints o on stdout as one line (pretty: indented, over several lines) and
// deletes it.
void bn_print_json(struct cJSON *o, bool pretty);

// "1.19 GB", "45.3 MB", "512 B" (decimal units, as download sizes are quoted).
void bn_format_bytes(double bytes, char *out, size_t cap);

// Peak resident set size of this process, in bytes.
uint64_t bn_peak_rss_bytes(void);

#endif
