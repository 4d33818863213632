/* common includes of the cmocka unit tests */

#ifndef DG_TEST_H
#define DG_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>

#include <cmocka.h>

#endif
