/*
 * distill-guard engine: building one Redis command's argument vector in
 * its own fixed storage, without allocation.
 */

#ifndef DG_CMD_H
#define DG_CMD_H

#include <stddef.h>

#include "dg_window.h"


void dg_cmd_init(dg_cmd_t *cmd);

/* copies data into the command's storage; -1 when it does not fit */
int dg_cmd_add(dg_cmd_t *cmd, const char *data, size_t len);

/* refers to data that outlives the command (script text); no copy */
int dg_cmd_add_ref(dg_cmd_t *cmd, const char *data, size_t len);

/*
 * The command in Redis's protocol (RESP: "*argc", then "$len" and the
 * bytes of each argument) into buf; its length, or -1 when it does not
 * fit in size bytes
 */
long dg_cmd_format(const dg_cmd_t *cmd, char *buf, size_t size);

/* printf-style argument; -1 when it does not fit */
int dg_cmd_addf(dg_cmd_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));


#endif /* DG_CMD_H */
