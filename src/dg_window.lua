--[[
distill-guard: the sliding window of one API key.

One call adds the current request to its key's window; the gateway then
reads the window (a GET in the same pipeline), decodes it and computes
the profile in C (src/dg_profile.c), so Redis only stores.  The clock
is Redis's own (TIME), shared by every gateway node; Redis 7 replicates
the script's effects, not the script.

The layout of the value, and what each field means, is documented in
one place: doc/redis-keys.md ("The window value").  The constants below
must agree with it and with src/dg_profile.h.

KEYS[1]  <prefix>:{<key_id>}:w    the key's window (STRING)
KEYS[2]  <prefix>:{<key_id>}:s    the key's state (HASH): st, pu,
                                  tt, rt; read when the window starts
                                  afresh, the window's header holds
                                  the limiter's state (doc/redis-keys.md)

ARGV[1]  the request, packed little-endian in 43 bytes (one argument:
         parsing fifteen cost a third of the script's time):
         window_ms u32 (1 .. 2^31 - 1), topic u16 (bucket 0 .. 4095 of
         the first user turn), head u16 and tail u16 (template
         fingerprints folded to 12 bits; 0: none), flags u8 (bit 0:
         one-shot, no history claimed; bit 1: cot; bit 2: the last user
         turn is a message of 6 tokens or more), bytes u40 (prompt
         bytes), now_ms u48 (0: TIME; else, for tests, the clock),
         throttle_ms u32 (a penalised key may send one request per
         throttle_ms; 0: no throttle), rate_ms u32 and rate_burst u32
         (plain per-key rate: one request per rate_ms, rate_burst more at
         once; 0: none), shadow u8 (unused here: the module decides),
         topic_last u16 (topic of the last user turn), sent u16 (what
         this request sends, folded to 16 bits, not 0), prior u16 (the
         user turn the claimed history was last answered on; 0: none),
         opening u16 (the conversation's first user turn)

Provenance.  A request that claims a history is checked against what
this key really sent, over the whole ring: each record keeps what its
request sent and the conversation's opening.  The request continues a
conversation of this key (verified) when a record sent the prior turn
in the same conversation (same opening), or when exactly one record
sent it (a trimmed conversation has lost its opening, but a message sent
once tells the conversation).  Else, when a record of the same opening
claimed a history it had not sent, the history is a preamble the key
repeats, such as a product's few-shot examples (prefix); else it was
made up (fabricated).  A verified follow-up of 6 tokens or more that
this key already sent in another conversation is scripted (bit 0 of
the record's flags).  Verified and fabricated requests are about what
the conversation opened with (topic), others about their last user turn
(topic_last); requests with no history and fabricated ones are one-shot.
The search is a plain string.find of the 16-bit value in the ring, kept
when it falls on the field of a record.

Reply: one 26-byte string, little-endian: now_ms u48, provenance of
this request u8 (0 none, 1 verified, 2 fabricated, 3 prefix), the slot
of its record u8, st u8, refused u8 (0, 1 by the throttle, 2 by the
plain rate), penalty_ms u48, retry_ms u48, remaining u32.  The
gateway reads the value itself with a plain GET pipelined right after
the script (a GET inside the script would copy it through Lua, which
costs more than the rest of the script); a request of the same key from
another connection may come between the two: its record is then in the
value too, newer than this one.

A refused request is still added to the window: the profile is of what
the key sends, so a campaign that keeps knocking stays throttled.

TTL: set to window_ms plus one sub-window when a sub-window starts:
after a window without requests all records are stale, and the key is
gone within one more sub-window.
]]

local RING = 128
local SUBW = 16
local HDR = 32
local BSZ = 9
local FRONT = HDR + BSZ
local RSZ = 12
local ROFF = FRONT + SUBW * BSZ
local SIZE = ROFF + RING * RSZ
local VERSION = 7
local B24 = 16777216
local HALF = 2147483648
local ARGLEN = 43

local floor = math.floor

-- numbers go to redis.call as strings made with fmt('%d'): Redis would
-- format them with %.14g, which costs more than the call.  No closure
-- or table is made on the common path: the garbage costs as much again
local fmt = string.format

local key = KEYS[1]
if #ARGV ~= 1 or #ARGV[1] ~= ARGLEN then
    return redis.error_reply('ERR distill-guard window: bad arguments')
end
local window, topic, head, tail, flags, nbytes, now, throttle_ms, rate_ms,
      rate_burst, _, topic_last, sent, prior, opening =
    struct.unpack('<I4HHHBI5I6I4I4I4BHHHH', ARGV[1])
if window < 1 or window >= HALF then
    return redis.error_reply('ERR distill-guard window: bad window_ms')
end
topic, head, tail = topic % 4096, head % 4096, tail % 4096
-- bit 2 of the flags: the last user turn is a message, not "thanks"
local long = (flags % 8) >= 4
topic_last, flags = topic_last % 4096, flags % 4

if now == 0 then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
end

-- sub-window width, and the unit of the 24-bit timestamps: 1 ms up to
-- a window of 2^22 ms (69 min)
local w = math.ceil(window / SUBW)
local tu = math.ceil(window / 4194304)

-- the header and the sub-window counters; the ring is read only to
-- check a claimed history (reading the whole value into Lua costs more
-- than the rest of the script: the gateway GETs it after this script)
local hb = redis.call('GETRANGE', key, '0', fmt('%d', FRONT - 1))
local n, nxt, hw, newest, sbyte, pu, tt, rt = 0, 0, 0, 0, 0, 0, 0, 0
local fresh = true
if #hb == FRONT then
    local ver
    ver, n, nxt, hw, newest, sbyte, pu, tt, rt =
        struct.unpack('<BBBI4I6BI6I6I6', hb)
    fresh = (ver ~= VERSION or hw ~= w or n < 1 or n > RING
             or nxt >= RING or (n < RING and nxt ~= n))
end
if fresh then
    n, nxt, newest, sbyte, pu, tt, rt = 0, 0, 0, 0, 0, 0, 0
end

-- a node whose clock is behind the newest record (a failover) is held at
-- it, so the ring stays in order
if now < newest then
    now = newest
end
local last = floor(newest / w)

-- the limiter: the plain rate first, then the throttle of a penalised
-- key; both are the generic cell rate algorithm on an arrival time
local skey = KEYS[2]
-- The limiter's state is in the header (doc/redis-keys.md): the state
-- byte (0: the key has no state; else 8 + st * 2), pu, tt and rt.  The
-- module writes the byte and pu (and tt, as a penalty starts) there when
-- it writes the state hash; this script writes tt and rt.  The hash is
-- read for a new window only: a key's state outlives its window there.
-- Called with one key, the script keeps no limiter state
local st = 0
if not skey then
    sbyte, pu, tt, rt = 0, 0, 0, 0
elseif fresh then
    local lim = redis.call('HMGET', skey, 'st', 'pu', 'tt', 'rt')
    st = tonumber(lim[1]) or 0
    pu = tonumber(lim[2]) or 0
    tt = tonumber(lim[3]) or 0
    rt = tonumber(lim[4]) or 0
    sbyte = lim[1] and 8 + (st % 4) * 2 or 0
elseif sbyte >= 8 then
    st = floor(sbyte / 2) % 4
end
local penalty = (pu > now) and (pu - now) or 0
local refused, retry, remaining = 0, 0, 0

if rate_ms > 0 then
    local t = math.max(rt, now)
    local allow = rate_ms * rate_burst
    if t - now > allow then
        refused, retry = 2, t - now - allow
    else
        rt = t + rate_ms
        remaining = floor((allow - (t - now)) / rate_ms)
    end
end

if refused == 0 and penalty > 0 and throttle_ms > 0 then
    if tt > now then
        refused, retry, remaining = 1, tt - now, 0
    else
        tt = now + throttle_ms
    end
end

-- provenance (see "Provenance" above): the records that sent the prior
-- turn, and whether one did so in this conversation (same opening); a
-- preamble this key claimed before without having sent it; this
-- follow-up sent before in another conversation.  Plain finds of the
-- 16-bit values, kept when they fall on the field of a record
local prov, again = 0, 0
if prior ~= 0 then
    prov = 2
    if n > 0 then
        local ring = redis.call('GETRANGE', key, fmt('%d', ROFF),
                                fmt('%d', ROFF + n * RSZ - 1))
        -- where pat sits on the field at offset off of a record, from
        -- position p on; nil when nowhere (made on this path only)
        local function field(pat, off, p)
            while true do
                p = string.find(ring, pat, p, true)
                if not p or (p - 1) % RSZ == off then
                    return p
                end
                p = p + 1
            end
        end
        -- verified: a record sent the prior turn in this conversation.
        -- Its sent and opening fields are adjacent (offsets 8 and 10):
        -- one find of both, where a find per sender and a look at each
        -- cost tens of microseconds for a key whose users repeat a turn;
        -- else exactly one record sent it: two finds are enough to tell
        local verified = field(struct.pack('<I2I2', prior, opening), 8, 1)
        local once = false
        if not verified then
            local pat = struct.pack('<I2', prior)
            local p = field(pat, 8, 1)
            once = p ~= nil and field(pat, 8, p + 1) == nil
        end
        if verified or once then
            prov = 1
            if long then
                -- sent before in a conversation of another opening
                local pat = struct.pack('<I2', sent)
                local p = field(pat, 8, 1)
                while p and struct.unpack('<I2', ring, p + 2) == opening do
                    p = field(pat, 8, p + 1)
                end
                if p then
                    again = 1
                end
            end
        else
            -- a record of this conversation whose history was not its
            -- own (provenance 2 or 3: tf >= 32768)
            local pat = struct.pack('<I2', opening)
            local p = field(pat, 10, 1)
            while p and struct.unpack('<I2', ring, p - 7) < 32768 do
                p = field(pat, 10, p + 1)
            end
            if p then
                prov = 3
            end
        end
    end
end
if prov == 0 or prov == 3 then
    topic = topic_last
end
-- bit 0 of the record's flags: a scripted follow-up (a verified one
-- whose message this key sent in another conversation); one-shot is
-- told by the provenance (0 or 2)
flags = flags - flags % 2 + again

-- This request's sub-window.  The header is followed by the counters
-- (requests, bytes) of the newest sub-window, last, then by those of
-- the 16 before it, sub-window x in slot x mod 16: a request in the
-- newest sub-window writes the header and its counters, 41 bytes at
-- offset 0, with the record; one that starts a sub-window closes the
-- newest into its slot and empties those between
local b = floor(now / w)
local cc, cb = 0, 0
if not fresh and b == last then
    cc, cb = struct.unpack('<I4I5', hb, HDR + 1)
end
if cc < 4294967295 then
    cc = cc + 1
end
cb = math.min(cb + nbytes, 1099511627775)

local newn = (n < RING) and n + 1 or RING
local front = struct.pack('<BBBI4I6BI6I6I6I4I5', VERSION, newn,
                          (nxt + 1) % RING, w, now, sbyte, pu, tt, rt,
                          cc, cb)
local rec = struct.pack('<I3HI3HH', floor(now / tu) % B24,
                        topic + flags * 4096 + prov * 16384,
                        head + tail * 4096, sent, opening)

-- The TTL is set when a sub-window starts, to one window and one
-- sub-window: a key lives at least a window after its last request
if fresh then
    -- The whole value at its final size (SETRANGE never grows it later),
    -- zeros made by Redis: a SETRANGE past the end of a missing key
    -- makes it exactly that long, where a 1.7 KB string built in Lua and
    -- SET cost this call more than all the rest.  A value of another
    -- layout goes first.  The front, the empty sub-windows and the first
    -- record are adjacent
    if #hb > 0 then
        redis.call('DEL', key)
    end
    redis.call('SETRANGE', key, fmt('%d', SIZE - 1), '\0')
    redis.call('SETRANGE', key, '0',
               front .. string.rep('\0', SUBW * BSZ) .. rec)
    redis.call('PEXPIRE', key, fmt('%d', window + w))
else
    if b > last then
        local k = b - last - 1
        if k >= SUBW then
            -- the window holds none of the sub-windows before
            redis.call('SETRANGE', key, fmt('%d', FRONT),
                       string.rep('\0', SUBW * BSZ))
        else
            -- the newest closes into its slot; the k between are empty
            redis.call('SETRANGE', key,
                       fmt('%d', FRONT + (last % SUBW) * BSZ),
                       string.sub(hb, HDR + 1, FRONT))
            if k > 0 then
                local s = (last + 1) % SUBW
                local k1 = math.min(k, SUBW - s)
                redis.call('SETRANGE', key, fmt('%d', FRONT + s * BSZ),
                           string.rep('\0', k1 * BSZ))
                if k > k1 then
                    redis.call('SETRANGE', key, fmt('%d', FRONT),
                               string.rep('\0', (k - k1) * BSZ))
                end
            end
        end
        redis.call('PEXPIRE', key, fmt('%d', window + w))
    end
    redis.call('SETRANGE', key, '0', front)
    redis.call('SETRANGE', key, fmt('%d', ROFF + nxt * RSZ), rec)
end

-- the record's slot: the gateway reads the value with a GET that
-- follows this script in the same pipeline.  One string: an array of
-- integers costs Redis and the gateway an object each
return struct.pack('<I6BBBBI6I6I4', now, prov, nxt, st, refused, penalty,
                   retry, remaining)
