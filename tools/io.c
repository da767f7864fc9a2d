// io.c - inputs ("-" is stdin) and outputs whose write errors are reported.
#include "io.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { MAX_INPUT = 64 << 20 };

int bn_read_input(const char *path, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    const bool use_stdin = !strcmp(path, "-");
    FILE *fp = use_stdin ? stdin : fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "error: cannot open '%s': %s\n", path, strerror(errno));
        return 1;
    }
    size_t n = 0, cap = 0;
    char *buf = NULL;
    const char *why = NULL;
    for (;;) {
        if (cap - n < 2) { // room for one more byte and the NUL
            if (cap > MAX_INPUT) {
                why = "it is larger than 64 MiB";
                break;
            }
            const size_t bigger_cap = cap ? cap * 2 : 4096;
            char *bigger = realloc(buf, bigger_cap);
            if (!bigger) {
                why = "out of memory";
                break;
            }
            buf = bigger;
            cap = bigger_cap;
        }
        const size_t got = fread(buf + n, 1, cap - 1 - n, fp);
        n += got;
        if (got == 0) {
            if (ferror(fp)) why = strerror(errno);
            break;
        }
    }
    if (!use_stdin) fclose(fp);
    if (!why && n > MAX_INPUT) why = "it is larger than 64 MiB";
    if (why) {
        fprintf(stderr, "error: cannot read '%s': %s\n", path, why);
        free(buf);
        return 1;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

int bn_read_prompt_file(const char *path, char **out) {
    size_t n;
    if (bn_read_input(path, out, &n)) return 1;
    if (memchr(*out, 0, n)) {
        fprintf(stderr, "error: cannot use prompt file '%s': it contains a NUL byte: it is not text\n",
                path);
        free(*out);
        *out = NULL;
        return 1;
    }
    if (n && (*out)[n - 1] == '\n') (*out)[n - 1] = 0; // as llama.cpp's -f: an editor's last line end
    return 0;
}

int bn_write_stdout(const char *text, size_t len) {
    if (len && fwrite(text, 1, len, stdout) != len) return -1;
    return fflush(stdout) == 0 ? 0 : -1;
}

int bn_finish_stdout(void) {
    errno = 0;
    const bool flush_failed = fflush(stdout) != 0;
    if (!flush_failed && !ferror(stdout)) return 0;
    fprintf(stderr, "error: writing to standard output failed%s%s\n", flush_failed ? ": " : "",
            flush_failed ? strerror(errno) : "");
    return 1;
}

// A standard descriptor closed by the caller (`>&-`) would be taken by the next
// open(), and the model or a download would then be "stdout". /dev/null parks on
// it instead, opened read-only so that writing there still fails and is reported.
void bn_guard_std_fds(void) {
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && open("/dev/null", O_RDONLY) != fd) return;
}

void bn_print_json(cJSON *o, bool pretty) {
    char *s = pretty ? cJSON_Print(o) : cJSON_PrintUnformatted(o);
    if (s) puts(s);
    free(s);
    cJSON_Delete(o);
}

void bn_format_bytes(double bytes, char *out, size_t cap) {
    static const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000 && u < 4) bytes /= 1000, u++;
    if (u == 0) snprintf(out, cap, "%.0f B", bytes);
    else snprintf(out, cap, "%.*f %s", bytes < 10 ? 2 : bytes < 100 ? 1 : 0, bytes, units[u]);
}

uint64_t bn_peak_rss_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_maxrss * 1024; // Linux reports KiB
}
