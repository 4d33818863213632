/* unit tests: a command's argument vector and its RESP form */

#include "dg_test.h"

#include <hiredis/hiredis.h>

#include "dg_cmd.h"


/* dg_cmd_format gives what hiredis's own formatter gives */
static void
same_as_hiredis(const dg_cmd_t *cmd)
{
    int    len;
    long   n;
    char  *ref, buf[2048];

    len = redisFormatCommandArgv(&ref, cmd->argc, (const char **) cmd->argv,
                                 cmd->argvlen);
    assert_true(len > 0);

    n = dg_cmd_format(cmd, buf, sizeof(buf));
    assert_int_equal(n, len);
    assert_memory_equal(buf, ref, len);

    /* one byte short: refused, never cut */
    assert_int_equal(dg_cmd_format(cmd, buf, (size_t) len - 1), -1);
    assert_int_equal(dg_cmd_format(cmd, buf, (size_t) len), len);

    free(ref);
}


static void
test_format(void **state)
{
    dg_cmd_t  cmd;
    char      bin[300];
    size_t    i;

    (void) state;

    dg_cmd_init(&cmd);
    assert_int_equal(dg_cmd_add(&cmd, "GET", 3), 0);
    assert_int_equal(dg_cmd_addf(&cmd, "dg:{%s}:w", "0123456789abcdef"),
                     0);
    same_as_hiredis(&cmd);

    /* empty, binary (CR, LF, NUL) and long arguments; many of them */
    for (i = 0; i < sizeof(bin); i++) {
        bin[i] = (char) i;
    }

    dg_cmd_init(&cmd);
    assert_int_equal(dg_cmd_add(&cmd, "EVALSHA", 7), 0);
    assert_int_equal(dg_cmd_add(&cmd, "", 0), 0);
    assert_int_equal(dg_cmd_add(&cmd, "\r\n\0x", 4), 0);
    assert_int_equal(dg_cmd_add(&cmd, bin, sizeof(bin)), 0);

    for (i = 0; i < 12; i++) {
        assert_int_equal(dg_cmd_addf(&cmd, "%zu", i * 1000003), 0);
    }

    same_as_hiredis(&cmd);

    /* no argument at all */
    dg_cmd_init(&cmd);
    assert_int_equal(dg_cmd_format(&cmd, bin, sizeof(bin)), 4);
    assert_memory_equal(bin, "*0\r\n", 4);
    assert_int_equal(dg_cmd_format(&cmd, bin, 3), -1);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
