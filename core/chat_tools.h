// chat_tools.h - OpenAI function calling ("tools") for models that were not
// trained for it, as llama.cpp's server does for such models: the request's
// tools become a system message that lists them, and the reply is held to a
// JSON Schema (bn_request.json_schema), so that it is always one of
//   {"tool_calls": [{"name": NAME, "arguments": {...}}, ...]}
//   {"response": "TEXT"}   (unless tool_choice requires a call; with a
//                           response_format, its value instead of TEXT)
// with each call's arguments valid for that tool's "parameters". The reply's
// JSON then becomes the message's tool_calls (finish_reason "tool_calls") or
// its content. Earlier turns go back to the model in the same shapes: an
// assistant message's tool_calls as the JSON above, a "tool" message as a user
// message {"tool_result": {"name", "content"}}.
#ifndef BN_CHAT_TOOLS_H
#define BN_CHAT_TOOLS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

// What a request's tools ask of the prompt and the reply; all NULL when it has
// none, or tool_choice is "none" (a plain reply).
typedef struct bn_tools {
    char *system; // the text to add to the system message (malloc'd)
    char *schema; // the reply's JSON Schema (malloc'd)
} bn_tools;

// From the request's "tools", "tool_choice" and "parallel_tool_calls". A
// function's "parameters" must be a schema json_schema.h can follow; unless the
// function is "strict", keywords it cannot follow that only narrow the values
// (pattern, a format other than date, time, date-time and uuid, multipleOf,
// ...) are dropped first.
// response_schema: what a {"response"} holds (a response_format's schema; NULL: text). Returns 0, or -1
// with the reason (naming the field) in err. A "stop" with tools is refused: it
// would cut the JSON the reply is read from.
int bn_tools_read(const cJSON *request, const cJSON *response_schema, bn_tools *t, char *err, size_t err_size);
void bn_tools_free(bn_tools *t);

// The content a message of msgs has for the model, malloc'd, and the role it
// goes in as (*role): a "tool" message's result, an assistant's tool_calls,
// or NULL (with the reason in err) when such a message is malformed. Other
// messages: NULL with err empty (not this file's to read).
char *bn_tools_message(const cJSON *msgs, const cJSON *msg, const char **role, char *err, size_t err_size);

// The conversation as the model reads it, from a chat request's "messages": a
// new JSON array of {"role", "content"} strings. Each message's text is as
// bn_tools_message makes it, or its content (bn_message_text); "developer" is
// "system" (OpenAI's newer name). system, the tools' part (NULL: none), is added
// to the first message when that is a system message, else goes in as one
// before the rest. NULL with the reason in err.
cJSON *bn_tools_conversation(const cJSON *msgs, const char *system, char *err, size_t err_size);

// Fills a chat reply's message (or a stream's last delta) from the whole
// generated text: "tool_calls" (ids made from reply_id; each call's arguments
// as the model wrote them, blanks aside, so that no number is rounded) or
// "content" (a response_format's JSON value as text), and says the
// finish_reason ("tool_calls", or NULL: the one the stop gives). A text cut
// short (max_tokens) is not JSON: it goes out as the content.
void bn_tools_reply(cJSON *message, const char *text, size_t len, const char *reply_id, bool delta,
                    const char **finish);

#endif
