// chat_style.c - which of the three chat formats (chat.h) a model's chat
// template asks for. In the tokenizer, not in chat.c, because the GGUF loader
// picks the style when it reads tokenizer.chat_template: the tokenizer then
// never calls up into the chat layer that calls it.
#include <string.h>

#include "tokenizer.h"

// llama.cpp's test for its llama3 template.
static bool is_llama3(const char *tmpl) {
    return strstr(tmpl, "<|start_header_id|>") && strstr(tmpl, "<|end_header_id|>");
}

// llama.cpp takes <|assistant|> + <|user|> with "</s>" as falcon3 (without, as
// GLM-Edge; with <|end|> as Phi-3, with [gMASK] as ChatGLM). The Falcon3-Instruct
// template has no "</s>": it ends an assistant message with eos_token.
static bool is_falcon3(const char *tmpl) {
    return strstr(tmpl, "<|assistant|>") && strstr(tmpl, "<|user|>") && !strstr(tmpl, "<|end|>") &&
           !strstr(tmpl, "[gMASK]") && (strstr(tmpl, "</s>") || strstr(tmpl, "message['content'] + eos_token"));
}

// BitNet b1.58 2B-4T's: "Role: content<|eot_id|>" with the role capitalized, then
// "Assistant: " (llama.cpp's test for its bitnet template, plus the role).
static bool is_bitnet(const char *tmpl) {
    return strstr(tmpl, "<|eot_id|>") && strstr(tmpl, "Assistant: ") && strstr(tmpl, "capitalize") &&
           !is_llama3(tmpl);
}

bn_chat_style bn_chat_detect_style(const char *tmpl) {
    if (!tmpl) return BN_CHAT_STYLE_BITNET;
    if (!strcmp(tmpl, "llama3")) return BN_CHAT_STYLE_LLAMA3;
    if (!strcmp(tmpl, "falcon3")) return BN_CHAT_STYLE_FALCON3;
    if (is_llama3(tmpl)) return BN_CHAT_STYLE_LLAMA3;
    if (is_falcon3(tmpl)) return BN_CHAT_STYLE_FALCON3;
    return BN_CHAT_STYLE_BITNET;
}

bool bn_chat_template_is(const char *tmpl, bn_chat_style style) {
    if (!tmpl) return false;
    switch (style) {
    case BN_CHAT_STYLE_LLAMA3: return is_llama3(tmpl);
    case BN_CHAT_STYLE_FALCON3: return is_falcon3(tmpl);
    default: return is_bitnet(tmpl);
    }
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
