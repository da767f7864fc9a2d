// chat_style.c - which of the three chat formats (chat.h) a model's chat
// template asks for. In the tokenizer, not in chat.c, because the GGUF loader
// picks the style when it reads tokenizer.chat_template: the tokenizer then
// never calls up into the chat layer that calls it.
#include <string.h>

#include "tokenizer.h"

bn_chat_style bn_chat_detect_style(const char *tmpl) {
    if (!tmpl) return BN_CHAT_STYLE_BITNET;
    if (!strcmp(tmpl, "llama3")) return BN_CHAT_STYLE_LLAMA3;
    if (!strcmp(tmpl, "falcon3")) return BN_CHAT_STYLE_FALCON3;
    // llama.cpp's test for its llama3 template.
    if (strstr(tmpl, "<|start_header_id|>") && strstr(tmpl, "<|end_header_id|>"))
        return BN_CHAT_STYLE_LLAMA3;
    // llama.cpp takes <|assistant|> + <|user|> with "</s>" as falcon3 (without, as
    // GLM-Edge; with <|end|> as Phi-3, with [gMASK] as ChatGLM). The Falcon3-Instruct
    // template has no "</s>": it ends an assistant message with eos_token.
    if (strstr(tmpl, "<|assistant|>") && strstr(tmpl, "<|user|>") && !strstr(tmpl, "<|end|>") &&
        !strstr(tmpl, "[gMASK]") &&
        (strstr(tmpl, "</s>") || strstr(tmpl, "message['content'] + eos_token")))
        return BN_CHAT_STYLE_FALCON3;
    return BN_CHAT_STYLE_BITNET;
}

int bn_chat_style_from_name(const char *name, bn_chat_style *out) {
    const bn_chat_style all[] = {BN_CHAT_STYLE_BITNET, BN_CHAT_STYLE_LLAMA3, BN_CHAT_STYLE_FALCON3};
    for (size_t i = 0; name && i < sizeof all / sizeof *all; i++)
        if (!strcmp(name, bn_chat_style_name(all[i]))) return *out = all[i], 0;
    return -1;
}

const char *bn_chat_style_name(bn_chat_style style) {
    switch (style) {
    case BN_CHAT_STYLE_LLAMA3: return "llama3";
    case BN_CHAT_STYLE_FALCON3: return "falcon3";
    default: return "bitnet";
    }
}
