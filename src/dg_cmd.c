/*
 * distill-guard engine: building one Redis command's argument vector.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dg_cmd.h"


void
dg_cmd_init(dg_cmd_t *cmd)
{
    cmd->argc = 0;
    cmd->used = 0;
}


int
dg_cmd_add(dg_cmd_t *cmd, const char *data, size_t len)
{
    char  *p;

    if (cmd->argc == DG_CMD_ARGV_MAX || len > sizeof(cmd->buf) - cmd->used) {
        return -1;
    }

    p = cmd->buf + cmd->used;
    memcpy(p, data, len);
    cmd->used += len;

    cmd->argv[cmd->argc] = p;
    cmd->argvlen[cmd->argc] = len;
    cmd->argc++;

    return 0;
}


int
dg_cmd_add_ref(dg_cmd_t *cmd, const char *data, size_t len)
{
    if (cmd->argc == DG_CMD_ARGV_MAX) {
        return -1;
    }

    cmd->argv[cmd->argc] = data;
    cmd->argvlen[cmd->argc] = len;
    cmd->argc++;

    return 0;
}


int
dg_cmd_addf(dg_cmd_t *cmd, const char *fmt, ...)
{
    int       n;
    size_t    room;
    va_list   args;

    if (cmd->argc == DG_CMD_ARGV_MAX) {
        return -1;
    }

    room = sizeof(cmd->buf) - cmd->used;

    va_start(args, fmt);
    n = vsnprintf(cmd->buf + cmd->used, room, fmt, args);
    va_end(args);

    /* vsnprintf needs room for its NUL, which the argument does not */
    if (n < 0 || (size_t) n >= room) {
        return -1;
    }

    cmd->argv[cmd->argc] = cmd->buf + cmd->used;
    cmd->argvlen[cmd->argc] = (size_t) n;
    cmd->argc++;
    cmd->used += (size_t) n;

    return 0;
}


/* the digits of n in decimal */

static size_t
dg_cmd_digits(size_t n)
{
    size_t  d;

    for (d = 1; n >= 10; n /= 10) {
        d++;
    }

    return d;
}


/* n in decimal at p, with room for its digits; the end */

static char *
dg_cmd_decimal(char *p, size_t n)
{
    char  *end;

    end = p + dg_cmd_digits(n);
    p = end;

    do {
        *--p = (char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return end;
}


long
dg_cmd_format(const dg_cmd_t *cmd, char *buf, size_t size)
{
    int      i;
    char    *p, *end;
    size_t   len;

    p = buf;
    end = buf + size;

    if (size < 3 + dg_cmd_digits((size_t) cmd->argc)) {
        return -1;
    }

    *p++ = '*';
    p = dg_cmd_decimal(p, (size_t) cmd->argc);
    *p++ = '\r';
    *p++ = '\n';

    for (i = 0; i < cmd->argc; i++) {
        len = cmd->argvlen[i];

        if ((size_t) (end - p) < 5 + dg_cmd_digits(len) + len) {
            return -1;
        }

        *p++ = '$';
        p = dg_cmd_decimal(p, len);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, cmd->argv[i], len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }

    return (long) (p - buf);
}
