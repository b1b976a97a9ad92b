/*
** test_golden.c — end-to-end checks against ../shared/golden (karpathy/llama2.c run.c output),
** through the public API only: prompt ids, greedy ids and text, and logits at the listed
** positions (abs 1e-4), for stories260K and the random-weight llama-2-tiny.
*/
#include "golden_util.h"

static void test_stories260k(void **state)
{
    golden_model(INFER_BACKEND_CPU, "models/stories260K.bin", "models/tok512.bin", "golden/stories260K.greedy.txt",
                 "golden/stories260K.logits.txt", 1);
}

static void test_tiny_random(void **state)
{
    golden_model(INFER_BACKEND_CPU, "models/llama-2-tiny-random.f32.bin", NULL, "golden/llama-2-tiny-random.greedy.txt",
                 "golden/llama-2-tiny-random.logits.txt", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_tiny_random),
    };
    return cmocka_run_group_tests_name("golden", tests, NULL, NULL);
}
