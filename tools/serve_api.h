// serve_api.h - the server's endpoints as JSON in, JSON out, with no HTTP in
// sight: OpenAI's /v1/chat/completions, /v1/completions and /v1/models,
// llama.cpp's /health, /tokenize and /detokenize, and Prometheus's /metrics.
// serve_http.c calls these.
#ifndef BN_SERVE_API_H
#define BN_SERVE_API_H

#include <stdbool.h>
#include <stddef.h>

#include "bitnet.h"
#include "serve_sched.h"

typedef struct bn_api {
    bn_engine *engine;
    bn_sched *sched;
    const char *model_id; // what /v1/models lists and responses name
    int n_ctx;            // per slot
    long created;         // when the server started (unix seconds)
    bn_sampling sampling; // what a request's absent sampling fields take (serve's flags)
    bool seed_given;      // with the seed too; else each request without one draws its own
    int max_tokens;       // a request's max_tokens when it gives none (0: the context's
                          // end); -1: OpenAI's, 16 for a completion, the context's end for a chat
} bn_api;

// Where the reply to one choice stands.
typedef struct bn_api_choice {
    bool called_tools;  // a chat with tools whose reply calls them: finish_reason "tool_calls"
    bool ended;         // a stream: its last chunk went out
    size_t text_offset; // a completion's logprobs: the bytes of the tokens reported so far
} bn_api_choice;

// An endpoint's answer: a complete reply (status, JSON body), or a generation
// that runs as a job, streamed as server-sent events or answered when done.
typedef struct bn_api_reply {
    int status;  // 0 while a job runs
    char *body;  // malloc'd JSON (or the content_type's text)
    const char *content_type; // NULL: application/json
    bn_job *job; // the generation, with a reference for the caller
    bool stream, chat;
    bool tools;         // a chat whose reply may be tool calls (chat_tools.h): each
                        // choice goes out whole, also when streamed
    bool logprobs;      // the request asked for them
    bn_api_choice choice[BN_JOB_MAX_CHOICES];
    char id[40]; // "chatcmpl-..." or "cmpl-..."
    long created;
} bn_api_reply;

// method and path route the request; body is the request body (len bytes, NUL
// after them). Fills r; never fails (an error is a reply with its status).
void bn_api_handle(const bn_api *a, const char *method, const char *path, const char *body,
                   size_t len, bn_api_reply *r);

// OpenAI's error object {"error": {"message", "type", "param", "code"}}.
char *bn_api_error_json(int status, const char *message, const char *code);

// The finished job's reply (status and body into r): the completion object,
// from all of each choice's output (out[choice]), or the error the job ended with.
void bn_api_finish(const bn_api *a, bn_api_reply *r, const bn_job_output *out, const bn_job_state *st);

// The server-sent events "data: {...}\n\n" for the output in got[choice] (which
// it takes, leaving those it sends empty): a chunk for each choice with new
// output, a choice's last chunk (its finish_reason) as it ends, and with st->done
// the usage on the last of them and "data: [DONE]". first: the chat stream's
// opening chunks (role "assistant"). malloc'd; "" when there is nothing to send
// yet (a reply with tools is held until its choice ends).
char *bn_api_event(const bn_api *a, bn_api_reply *r, bn_job_output *got, const bn_job_state *st, bool first);

#endif
