/* unit tests: a reply as hiredis's reader makes it from RESP bytes */

#ifndef DG_TEST_RESP_H
#define DG_TEST_RESP_H

#include <hiredis/hiredis.h>


static inline redisReply *
t_resp(const char *resp, size_t len)
{
    void         *r;
    redisReader  *rd;

    rd = redisReaderCreate();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, resp, len), REDIS_OK);
    r = NULL;
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);

    return r;
}


/* the same for RESP text */

static inline redisReply *
t_resp_s(const char *resp)
{
    return t_resp(resp, strlen(resp));
}


/* a bulk string reply of len bytes */

static inline redisReply *
t_bulk(const unsigned char *data, size_t len)
{
    char        *buf;
    size_t       n;
    redisReply  *r;

    buf = malloc(len + 32);
    assert_non_null(buf);
    n = (size_t) sprintf(buf, "$%zu\r\n", len);
    memcpy(buf + n, data, len);
    memcpy(buf + n + len, "\r\n", 2);
    r = t_resp(buf, n + len + 2);
    free(buf);

    return r;
}


#endif /* DG_TEST_RESP_H */
