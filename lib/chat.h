/*
** chat.h — rendering a conversation with a model's chat template. Jinja templates are not
** interpreted: the families below are recognised from marker strings in the template and
** rendered by hand-written code that follows each family's documented format.
*/
#ifndef INFER_CHAT_H
#define INFER_CHAT_H

#include "internal.h"

typedef enum chat_family {
    CHAT_UNKNOWN = 0,
    CHAT_CHATML,   /* <|im_start|>role\ncontent<|im_end|>\n  (Qwen, SmolLM, ...) */
    CHAT_LLAMA3,   /* <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> */
    CHAT_LLAMA2,   /* <s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s> */
    CHAT_MISTRAL   /* <s>[INST] user [/INST] answer</s> */
} chat_family;

typedef struct chat_template {
    chat_family family;
    char *default_system;   /* ChatML templates that insert a system turn when none is given */
} chat_template;

/* Recognise a template string; INFER_EUNSUPPORTED naming (the start of) it when unknown. */
infer_status chat_parse(const char *tmpl, chat_template *out);
void chat_template_free(chat_template *t);
/* Render messages, ending with an open assistant turn, into out (appended). */
infer_status chat_render(const chat_template *t, const infer_message *msgs, size_t n, strbuf *out);

#endif
