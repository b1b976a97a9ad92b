/*
** test_chat.c — chat template recognition and rendering for each supported family, against
** reference strings written from each family's documented format (the Jinja templates as
** published with Qwen2, SmolLM2, Llama 3, Llama 2 and Mistral instruct models).
*/
#include "test_util.h"

#include "chat.h"

static const infer_message conv[] = {
    { "system", "You are terse." },
    { "user", "Hi!" },
    { "assistant", "Hello." },
    { "user", "What is 2+2?" },
};

static void expect(const char *tmpl, const infer_message *m, size_t n, const char *want)
{
    chat_template t;
    assert_int_equal(chat_parse(tmpl, &t), INFER_OK);
    strbuf b = { 0 };
    assert_int_equal(chat_render(&t, m, n, &b), INFER_OK);
    assert_string_equal(b.p, want);
    sb_free(&b);
    chat_template_free(&t);
}

/* Qwen2 / ChatML, with the default system turn SmolLM2's template adds. */
static const char *smollm2_tmpl =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

static void test_chatml(void **state)
{
    expect(smollm2_tmpl, conv, 4,
           "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
           "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
           "<|im_start|>assistant\n");
    /* no system message: the template's default one */
    expect(smollm2_tmpl, conv + 1, 1,
           "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
           "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
    /* a plain ChatML template without a default system turn */
    expect("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}",
           conv + 1, 1, "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
}

static void test_llama3(void **state)
{
    expect("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
           "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
           "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
           "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
           conv, 4,
           "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void test_llama2(void **state)
{
    expect("{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\\n' + messages[0]['content'] | trim + "
           "'\\n<</SYS>>\\n\\n' %}{% endif %}{% for message in loop_messages %}{{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}"
           "{% elif message['role'] == 'assistant' %}{{ ' ' + content | trim + ' ' + eos_token }}{% endfor %}",
           conv, 4,
           "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi! [/INST] Hello. </s><s>[INST] What is 2+2? [/INST]");
}

static void test_mistral(void **state)
{
    const char *t = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
                    "{{ message['content'] + eos_token}}{% endif %}{% endfor %}";
    expect(t, conv + 1, 3, "<s>[INST] Hi! [/INST]Hello.</s>[INST] What is 2+2? [/INST]");
    expect(t, conv, 2, "<s>[INST] You are terse.\n\nHi! [/INST]");
}

static void test_unknown_and_bad(void **state)
{
    chat_template t;
    assert_int_equal(chat_parse("{{ messages | tojson }}", &t), INFER_EUNSUPPORTED);
    assert_non_null(strstr(infer_err_text(), "tojson"));
    assert_int_equal(chat_parse(NULL, &t), INFER_EUNSUPPORTED);
    assert_int_equal(chat_parse("[INST]", &t), INFER_OK);
    infer_message bad[] = { { "tool", "x" } };
    strbuf b = { 0 };
    assert_int_equal(chat_render(&t, bad, 1, &b), INFER_EINVAL);
    infer_message nul[] = { { "user", NULL } };
    assert_int_equal(chat_render(&t, nul, 1, &b), INFER_EINVAL);
    sb_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chatml),
        cmocka_unit_test(test_llama3),
        cmocka_unit_test(test_llama2),
        cmocka_unit_test(test_mistral),
        cmocka_unit_test(test_unknown_and_bad),
    };
    return cmocka_run_group_tests_name("chat", tests, NULL, NULL);
}
