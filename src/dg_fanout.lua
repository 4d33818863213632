--[[
distill-guard: how many distinct API keys share one value (a template
head or tail fingerprint, a client network) in about a window, and how
many of those keys held verified conversations that opened with it.

Time is cut into buckets of window_ms, numbered floor(now_ms / window_ms)
by the gateway.  The HyperLogLog of bucket b holds the key ids seen in
buckets b - 1 and b: each request adds its key id to the current bucket
and to the next one.  Counting one key is then a single-key PFCOUNT,
which Redis answers from the HLL's cached cardinality; a PFCOUNT of two
keys would merge 16384 registers on every call (about 50 us once the
HLLs are dense).

Mode "count" (a one-shot request whose template or network this is):

KEYS[1]  <prefix>:{<tag>}:<bucket>        current bucket (HyperLogLog)
KEYS[2]  <prefix>:{<tag>}:<bucket + 1>    next bucket
KEYS[3]  <prefix>:{<tag>}:c<bucket>       the conversation HLL of the
                                          current bucket (read only)
         <tag> is h:<head hex>, t:<tail hex> or n:<network>; all keys
         carry the same hash tag (one Redis Cluster slot)

Mode "conv" (a key's verified conversation opened with this template):

KEYS[1]  <prefix>:{<tag>}:c<bucket>       the conversation HLLs, kept
KEYS[2]  <prefix>:{<tag>}:c<bucket + 1>   the same way

ARGV[1]  key_id     the requesting key's id
ARGV[2]  window_ms  the bucket width; the current bucket is kept one
                    window, the next one two
ARGV[3]  mode       "count" (also when absent), "add" (count mode's
                    keys, the key is added and nothing counted: a
                    gateway that holds a recent count) or "conv"

Reply, mode count: { distinct key ids seen since the start of the
previous bucket, distinct key ids among them that held a verified
conversation opened with this value (0 for networks) }.  That is over
the last window_ms plus the time since the current bucket started,
i.e. between one and two windows.  HyperLogLog estimates: standard
error 0.81 %, close to exact for small counts.  Modes add and conv: 0.
]]

local window = tonumber(ARGV[2])
if not window or window < 1 then
    return redis.error_reply('ERR distill-guard fanout: bad window_ms')
end
window = math.floor(window)

-- the TTL is set when an HLL changes (and so when it is created): it
-- covers the buckets that read it, and a key already in it costs no
-- more than the PFADD
if redis.call('PFADD', KEYS[1], ARGV[1]) == 1 then
    redis.call('PEXPIRE', KEYS[1], window)
end
if redis.call('PFADD', KEYS[2], ARGV[1]) == 1 then
    redis.call('PEXPIRE', KEYS[2], 2 * window)
end

if ARGV[3] == 'conv' or ARGV[3] == 'add' then
    return 0
end

local conv = 0
if KEYS[3] then
    conv = redis.call('PFCOUNT', KEYS[3])
end

return { redis.call('PFCOUNT', KEYS[1]), conv }
