--[[
distill-guard: how many distinct API keys share one value (a template
head or tail fingerprint, a client network) in about a window.

Time is cut into buckets of window_ms, numbered floor(now_ms / window_ms)
by the gateway.  The HyperLogLog of bucket b holds the key ids seen in
buckets b - 1 and b: each request adds its key id to the current bucket
and to the next one.  Counting one key is then a single-key PFCOUNT,
which Redis answers from the HLL's cached cardinality; a PFCOUNT of two
keys would merge 16384 registers on every call (about 50 us once the
HLLs are dense).

KEYS[1]  <prefix>:{<tag>}:<bucket>        current bucket (HyperLogLog)
KEYS[2]  <prefix>:{<tag>}:<bucket + 1>    next bucket
         <tag> is h:<head hex>, t:<tail hex> or n:<network>; both keys
         carry the same hash tag (one Redis Cluster slot)

ARGV[1]  key_id     the requesting key's id
ARGV[2]  window_ms  the bucket width; the current bucket is kept one
                    window, the next one two

Reply: the estimated number of distinct key ids seen since the start of
the previous bucket: over the last window_ms plus the time since the
current bucket started, i.e. between one and two windows.  HyperLogLog
estimate: standard error 0.81 %, close to exact for small counts.
]]

local window = tonumber(ARGV[2])
if not window or window < 1 then
    return redis.error_reply('ERR distill-guard fanout: bad window_ms')
end
window = math.floor(window)

redis.call('PFADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], window)
redis.call('PFADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], 2 * window)

return redis.call('PFCOUNT', KEYS[1])
