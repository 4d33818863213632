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
                                  rt; read when the window starts
                                  afresh, the window's header holds
                                  the limiter's state (doc/redis-keys.md)
KEYS[3]  <prefix>:{<key_id>}:p    the key's pending log (STRING): the
                                  records of the requests the gateway
                                  added without this script (APPEND),
                                  folded into the window here first
KEYS[4]  <prefix>:{<key_id>}:t    a penalised key's throttle (STRING:
                                  the end of its period, PX the period)

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

The pending log.  A request of a key whose window the gateway knows is
there does not call this script (unless it has a plain rate): the
gateway APPENDs its record (24 bytes, little-endian: now_ms u48, topic
u16 with cot in bit 12 and "a message" in bit 13, topic_last u16, head
and tail u24, sent u16, prior u16, opening u16, bytes u40) to KEYS[3]
and reads the window and the log back (src/dg_window_log.c folds them
as this script would).  Any call of this script first folds the log,
oldest first, exactly as if each record had been a call (its
provenance checked against the ring as it stood then), and deletes it.
The gateway, which folds the log to read the window anyway, writes its
fold back once the log holds a few records: a commit, the first branch
below, costs Redis a fraction of this script's fold.

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
local LOGRSZ = 24

local floor = math.floor

-- numbers go to redis.call as strings made with fmt('%d'): Redis would
-- format them with %.14g, which costs more than the call.  No closure
-- or table is made on the common path: the garbage costs as much again
local fmt = string.format

local key = KEYS[1]

-- A commit (keys: the window and the log): the gateway folded the key's
-- pending log into the window itself (src/dg_window_log.c, the bytes
-- this script's fold makes) and sends back the parts that changed:
-- ARGV the window's front as it read it, the log's bytes it folded, the
-- TTL to set (0: none; a sub-window started), then offset and bytes of
-- each part.  Written only if the front is still the one read: any call
-- of this script, a change of state and a release change it (a record
-- changes the newest sub-window's count), and then nothing is written:
-- the log stays for the next fold.  The log's first bytes go, those
-- appended since stay.  The first write is the window's, in place: a
-- Redis out of memory refuses it before anything changed
if #ARGV > 1 then
    local lkey = KEYS[2]
    if #KEYS ~= 2 or #ARGV % 2 ~= 1 or #ARGV[1] ~= FRONT then
        return redis.error_reply('ERR distill-guard window: bad arguments')
    end
    if redis.call('GETRANGE', key, '0', fmt('%d', FRONT - 1)) ~= ARGV[1] then
        return 0
    end
    local len = tonumber(ARGV[2])
    local have = redis.call('STRLEN', lkey)
    if not len or len < 1 or have < len then
        return 0
    end
    -- parts inside the value: it never grows
    for i = 4, #ARGV, 2 do
        local at = tonumber(ARGV[i])
        if not at or at < 0 or at + #ARGV[i + 1] > SIZE then
            return redis.error_reply('ERR distill-guard window: bad commit')
        end
    end
    for i = 4, #ARGV, 2 do
        redis.call('SETRANGE', key, ARGV[i], ARGV[i + 1])
    end
    if ARGV[3] ~= '0' then
        redis.call('PEXPIRE', key, ARGV[3])
    end
    if have == len then
        redis.call('DEL', lkey)
    else
        redis.call('SET', lkey, redis.call('GETRANGE', lkey, ARGV[2], '-1'),
                   'KEEPTTL')
    end
    return 1
end

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
local n, nxt, hw, newest, sbyte, pu, rt = 0, 0, 0, 0, 0, 0, 0
local fresh = true
if #hb == FRONT then
    -- the bytes after pu (tt once) are not used: the throttle is KEYS[4]
    local ver
    ver, n, nxt, hw, newest, sbyte, pu, _, rt =
        struct.unpack('<BBBI4I6BI6I6I6', hb)
    fresh = (ver ~= VERSION or hw ~= w or n < 1 or n > RING
             or nxt >= RING or (n < RING and nxt ~= n))
end
if fresh then
    n, nxt, newest, sbyte, pu, rt = 0, 0, 0, 0, 0, 0
end

-- The pending log (see above), oldest first: its records come before
-- this request.  Deleted at the end: a script's first write is checked
-- against maxmemory, the ones after it are not (a script is not stopped
-- half done), and a DEL first would let a Redis out of memory grow
local lkey = KEYS[3]
local log = lkey and redis.call('GET', lkey)
local m = log and floor(#log / LOGRSZ) or 0
local lnewest = newest
-- whether a record of the log or this request claims a history: the
-- ring is then followed record by record, for their provenance checks
local need = prior ~= 0
for i = 0, m - 1 do
    local t = struct.unpack('<I6', log, i * LOGRSZ + 1)
    if t > lnewest then
        lnewest = t
    end
    if not need and struct.unpack('<I2', log, i * LOGRSZ + 16) ~= 0 then
        need = true
    end
end

-- a node whose clock is behind the newest record (a failover, or a
-- gateway's record a little ahead) is held at it, so the ring stays in
-- order
if now < lnewest then
    now = lnewest
end

-- the limiter: the plain rate first, then the throttle of a penalised
-- key; both are the generic cell rate algorithm on an arrival time
local skey = KEYS[2]
-- The limiter's state is in the header (doc/redis-keys.md): the state
-- byte (0: the key has no state; else 8 + st * 2), pu and rt (tt, the
-- bytes after pu, is no longer used: the throttle is KEYS[4], which the
-- gateway's own path sets too).  The module writes the byte and pu there
-- when it writes the state hash; this script writes rt.  The hash is
-- read for a new window only: a key's state outlives its window there.
-- Called with one key, the script keeps no limiter state
local st = 0
if not skey then
    sbyte, pu, rt = 0, 0, 0
elseif fresh then
    local lim = redis.call('HMGET', skey, 'st', 'pu', 'rt')
    st = tonumber(lim[1]) or 0
    pu = tonumber(lim[2]) or 0
    rt = tonumber(lim[3]) or 0
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

-- the throttle: one request per throttle_ms, the period's end in
-- KEYS[4] for its length, or the penalty's if shorter (SET NX: the
-- gateway's own path does the same)
local tkey = KEYS[4]
if refused == 0 and penalty > 0 and throttle_ms > 0 and tkey then
    local px = fmt('%d', math.min(throttle_ms, penalty))
    local old = redis.call('SET', tkey, fmt('%d', now + throttle_ms), 'PX',
                           px, 'NX', 'GET')
    -- a period whose end has come by this clock (the key's PX runs on
    -- Redis's, the tests' clock may differ) is over: this one starts one
    local e = old and tonumber(old) or 0
    if e > now then
        refused, retry, remaining = 1, e - now, 0
    elseif old then
        redis.call('SET', tkey, fmt('%d', now + throttle_ms), 'PX', px)
    end
end


-- The records to add: the pending log's, then this request's.  The
-- header is followed by the counters (requests, bytes) of the newest
-- sub-window, last, then by those of the 16 before it, sub-window x in
-- slot x mod 16: a record in the newest sub-window adds to its counters;
-- one that starts a sub-window closes the newest into its slot and
-- empties those between.  The header and the newest counters, 41 bytes
-- at offset 0, are written once, after the records.
local last = floor(newest / w)
local cc, cb = 0, 0
if not fresh then
    cc, cb = struct.unpack('<I4I5', hb, HDR + 1)
end
local started = fresh
local first
if fresh then
    -- The whole value at its final size (SETRANGE never grows it later),
    -- zeros made by Redis: a SETRANGE past the end of a missing key
    -- makes it exactly that long, where a 1.7 KB string built in Lua and
    -- SET cost this call more than all the rest.  A value of another
    -- layout goes first
    if #hb > 0 then
        redis.call('DEL', key)
    end
    redis.call('SETRANGE', key, fmt('%d', SIZE - 1), '\0')
end

-- Provenance (see "Provenance" above) of a record that claims a
-- history, against the ring as it stands before the record: rs, the
-- ring's records in slot order, kept up to date record by record.
-- Made only when a record claims a history
local rs, check
if need then
    rs = n > 0 and redis.call('GETRANGE', key, fmt('%d', ROFF),
                              fmt('%d', ROFF + n * RSZ - 1))
         or ''
    -- where pat sits on the field at offset off of a record, from
    -- position p on; nil when nowhere
    local function field(pat, off, p)
        while true do
            p = string.find(rs, pat, p, true)
            if not p or (p - 1) % RSZ == off then
                return p
            end
            p = p + 1
        end
    end
    check = function(pr, op, se, lg)
        if #rs == 0 then
            return 2, 0
        end
        -- verified: a record sent the prior turn in this conversation.
        -- Its sent and opening fields are adjacent (offsets 8 and 10):
        -- one find of both, where a find per sender and a look at each
        -- cost tens of microseconds for a key whose users repeat a turn;
        -- else exactly one record sent it: two finds are enough to tell
        local verified = field(struct.pack('<I2I2', pr, op), 8, 1)
        local once = false
        if not verified then
            local pat = struct.pack('<I2', pr)
            local p = field(pat, 8, 1)
            once = p ~= nil and field(pat, 8, p + 1) == nil
        end
        if verified or once then
            if lg then
                -- sent before in a conversation of another opening
                local pat = struct.pack('<I2', se)
                local p = field(pat, 8, 1)
                while p and struct.unpack('<I2', rs, p + 2) == op do
                    p = field(pat, 8, p + 1)
                end
                if p then
                    return 1, 1
                end
            end
            return 1, 0
        end
        -- a record of this conversation whose history was not its own
        -- (provenance 2 or 3: tf >= 32768)
        local pat = struct.pack('<I2', op)
        local p = field(pat, 10, 1)
        while p and struct.unpack('<I2', rs, p - 7) < 32768 do
            p = field(pat, 10, p + 1)
        end
        return p and 3 or 2, 0
    end
end

-- a log's records are written in one SETRANGE per run of slots (two at
-- most: the ring wraps once), seg holding those not written yet
local slot, prov, seg, seg_at = 0, 0, nil, 0
for i = 0, m do
    -- the record: time, topics, cot and a message (bit 0 and 1 of cf),
    -- template head and tail, what it sent, its prior turn, its opening,
    -- its bytes
    local t, tw, tl, ht, se, pr, op, nb, cf, lg
    if i < m then
        t, tw, tl, ht, se, pr, op, nb =
            struct.unpack('<I6HHI3HHHI5', log, i * LOGRSZ + 1)
        if t < newest then
            t = newest
        end
        cf, lg = floor(tw / 4096) % 2, floor(tw / 8192) % 2 == 1
        tw, tl = tw % 4096, tl % 4096
    else
        t, tw, tl, ht, se, pr, op, nb = now, topic, topic_last,
            head + tail * 4096, sent, prior, opening, nbytes
        cf, lg = floor(flags / 2), long
    end
    -- bit 0 of the record's flags: a scripted follow-up (a verified one
    -- whose message this key sent in another conversation); one-shot is
    -- told by the provenance (0 or 2).  Verified and fabricated requests
    -- are about what the conversation opened with, others about their
    -- last user turn
    local p, again = 0, 0
    if pr ~= 0 then
        p, again = check(pr, op, se, lg)
    end
    if p == 0 or p == 3 then
        tw = tl
    end
    local rec = struct.pack('<I3HI3HH', floor(t / tu) % B24,
                            tw + (cf * 2 + again) * 4096 + p * 16384, ht, se,
                            op)
    local b = floor(t / w)
    if fresh then
        fresh = false
    elseif b > last then
        local k = b - last - 1
        if k >= SUBW then
            -- the window holds none of the sub-windows before
            redis.call('SETRANGE', key, fmt('%d', FRONT),
                       string.rep('\0', SUBW * BSZ))
        else
            -- the newest closes into its slot; the k between are empty
            redis.call('SETRANGE', key,
                       fmt('%d', FRONT + (last % SUBW) * BSZ),
                       struct.pack('<I4I5', cc, cb))
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
        cc, cb = 0, 0
        started = true
    end
    last = b
    if cc < 4294967295 then
        cc = cc + 1
    end
    cb = math.min(cb + nb, 1099511627775)
    if i < m then
        if not seg then
            seg, seg_at = {}, nxt
        end
        seg[#seg + 1] = rec
        if nxt == RING - 1 or i == m - 1 then
            redis.call('SETRANGE', key, fmt('%d', ROFF + seg_at * RSZ),
                       table.concat(seg))
            seg = nil
        end
    elseif n == 0 then
        -- the only record of a new value sits right after the empty
        -- sub-windows: written with the front below, in one call
        first = rec
    else
        redis.call('SETRANGE', key, fmt('%d', ROFF + nxt * RSZ), rec)
    end
    if rs and i < m then
        -- the ring as the next record finds it
        if n < RING then
            rs = rs .. rec
        else
            rs = string.sub(rs, 1, nxt * RSZ) .. rec
                 .. string.sub(rs, (nxt + 1) * RSZ + 1)
        end
    end
    slot, newest, prov = nxt, t, p
    nxt, n = (nxt + 1) % RING, (n < RING) and n + 1 or RING
end

-- tt (after pu) is written 0: the throttle is KEYS[4]
local front = struct.pack('<BBBI4I6BI6I6I6I4I5', VERSION, n, nxt, w, now,
                          sbyte, pu, 0, rt, cc, cb)
if first then
    redis.call('SETRANGE', key, '0',
               front .. string.rep('\0', SUBW * BSZ) .. first)
else
    redis.call('SETRANGE', key, '0', front)
end

-- The TTL is set when a sub-window starts, to one window and one
-- sub-window: a key lives at least a window after its last request
if started then
    redis.call('PEXPIRE', key, fmt('%d', window + w))
end
if log then
    redis.call('DEL', lkey)
end

-- the record's slot: the gateway reads the value with a GET that
-- follows this script in the same pipeline.  One string: an array of
-- integers costs Redis and the gateway an object each
return struct.pack('<I6BBBBI6I6I4', now, prov, slot, st, refused, penalty,
                   retry, remaining)
