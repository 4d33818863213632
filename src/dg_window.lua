--[[
distill-guard: the sliding window of one API key.

One call adds the current request to its key's window and returns the
key's window profile.  The clock is Redis' own (TIME), so every gateway
node shares it; Redis 7 replicates the script's effects, not the script.

KEYS[1]  <prefix>:{<key_id>}:w    the key's window state (STRING, below)
KEYS[2]  <prefix>:{<key_id>}:s    the key's limiter state (HASH): st (0
                                  pass, 1 tag, 2 throttle), pu (end of
                                  the penalty, ms), tt and rt (theoretical
                                  arrival times of the throttle and of the
                                  plain rate, ms); st and pu are written
                                  by the module on a change of state

ARGV[1]  window_ms      window length in milliseconds, 1 .. 2^31 - 1
ARGV[2]  topic          topic bucket 0 .. 4095 of the first user turn
ARGV[3]  template_head  head fingerprint, uint32 in decimal; 0: none
ARGV[4]  template_tail  tail fingerprint, uint32 in decimal; 0: none
ARGV[5]  flags          bit 0: one-shot, the request claims no history
                        (no assistant or tool turn after a user turn),
                        bit 1: cot > 0, bit 2: the last user turn is a
                        message (6 tokens or more), not an "ok, thanks"
ARGV[6]  bytes          prompt bytes of the request
ARGV[7]  now_ms         empty, or for tests only: the clock in ms since
                        the epoch instead of TIME
ARGV[8]  throttle_ms    a penalised key may send one request per
                        throttle_ms; 0: no throttle
ARGV[9]  rate_ms        plain per-key rate: one request per rate_ms, with
ARGV[10] rate_burst     rate_burst more at once; rate_ms 0: no rate
ARGV[11] shadow         "1": report refusals but let every request count
ARGV[12] topic_last     topic bucket of the last user turn
ARGV[13] sent           fingerprint (uint32, not 0) of the last user turn:
                        what this request sends
ARGV[14] prior          fingerprint of the user turn the claimed history
                        was last answered on; 0: no history claimed
ARGV[15] opening        fingerprint of the first user turn: the
                        conversation the request belongs to

Provenance.  A request that claims a history is checked against what
this key really sent: each ring record keeps its request's "sent" and
"opening" fingerprints.  The request continues a conversation of this
key (verified) when a record sent the prior turn in the same
conversation (same opening), or when exactly one record sent it (a
trimmed conversation has lost its opening, but a message sent once
tells the conversation).  Else, when a record with the same opening
claimed a history it had not sent either, the history is a fixed
preamble the key repeats, such as a product's few-shot examples
(prefix).  Else the history was made up or comes from elsewhere
(fabricated).  The whole ring counts, not only the window: the last 128
requests, for as long as the key is not idle for a window.  Verified
and fabricated requests are about what the conversation opened with
(ARGV[2]); others about their last user turn (ARGV[12]).  Requests with
no history and fabricated ones are one-shot.

Reply: an array of integers in the DG_PROF_* order of src/dg_window.h.
Later versions append fields; readers ignore what they do not know.

  1 requests          requests in the window (see "Sliding count")
  2 sample            ring records inside the window; 3..10 are over them
  3 topics            distinct topic buckets
  4 topic_entropy     Shannon entropy of the topic distribution, bits*1000
  5 templates         distinct template fingerprints: min(distinct heads,
                      distinct tails), each over the requests that have
                      one; a side no request has is left out
  6 top_template      max(top head share, top tail share) * 1000
  7 single_turn       share of one-shot requests * 1000 (no history, or
                      a fabricated one)
  8 cot               share of requests with reasoning elicitation * 1000
  9 gap_mean_ms       mean of the inter-arrival gaps
 10 gap_cv            their coefficient of variation * 1000 (population
                      standard deviation / mean)
 11 bytes             prompt bytes in the window (same method as 1)
 12 state             the key's state as the module last wrote it
 13 penalty_ms        penalty left, 0 if none
 14 refused           0, 1 refused by the throttle, 2 by the plain rate
 15 retry_ms          for a refused request: when one would pass
 16 remaining         requests left in the burst of the limit that applied
 17 now_ms            Redis's clock
 18 verified          share of verified conversation requests * 1000
 19 fabricated        share of requests with a fabricated history * 1000
 20 prefix            share of requests with a repeated preamble * 1000
 21 provenance        this request: 0 no history, 1 verified,
                      2 fabricated, 3 prefix
 22 scripted          share * 1000 of verified follow-ups whose message
                      (bit 2 of the flags) this key already sent in
                      another conversation: a script's fixed follow-ups

A refused request is still added to the window: the profile is of what
the key sends, so a campaign that keeps knocking stays throttled.

State: one STRING of fixed size, little-endian.  It is written whole when
created and then patched with SETRANGE, so its allocation never changes.
src/dg_window_state.c decodes it for distill-guard-ctl; t/50-ctl.t checks
that decoder against this script: change the two together.

  header   15 bytes   version u8, n u16 (records in the ring), next u16
                      (slot written next), w u32 (sub-window width, ms),
                      last u48 (number of the newest sub-window counted)
  buckets  33 * 10    sub-window x = floor(ts / w) in slot x mod 33:
                      requests u32, bytes u48; slots last-32 .. last are
                      valid, the others are zeroed as "last" advances
  ring     128 * 29   the last 128 requests, in slot order:
                      ts u32       arrival, ms since the epoch mod 2^32
                      tf u16       topic | one-shot << 12 | cot << 13
                                   | provenance << 14
                      refs u24     dt | dh << 7 | dl << 14: how many
                                   records back the same topic, head,
                                   tail was last seen inside the window
                                   when this one arrived; 0: not seen
                                   (or no head / tail); bit 21: a
                                   scripted follow-up (see reply 22)
                      head u32, tail u32, bytes u32 (saturated)
                      sent u32, opening u32 (see Provenance)

Timestamps: the key expires after window_ms without a request, so two
consecutive records are less than window_ms < 2^31 apart; the script
rebuilds true times from "now" backwards by adding the gaps mod 2^32.

The back-references make every statistic one pass over arrays, without
hash tables: a record whose reference points before the window start is
the first of its value in the window (distinct counts), and following
the references gives each value's count (shares, entropy).

Sliding count: while every request newer than the window start is still
in the ring, requests and bytes are exact.  Beyond 128 requests in the
window, the requests the ring has dropped are counted from the 32
sub-windows: whole sub-windows exactly, the dropped part of the newest
one exactly (its count minus the ring's records in it), and the one that
holds the window start prorated by the share of its span inside the
window.  The error is at most the dropped requests of that one
sub-window (window / 32 wide); zero on average for steady traffic.

Every write sets the TTL to window_ms: after a window without requests
all records are stale, and the key is gone.
]]

local RING = 128
local SUBW = 32
local NB = SUBW + 1
local HDR = 15
local BSZ = 10
local RSZ = 29
local NF = 8                            -- fields per ring record
local ROFF = HDR + NB * BSZ
local SIZE = ROFF + RING * RSZ
local VERSION = 4
local B32 = 4294967296
local HALF = 2147483648

local floor = math.floor

local key = KEYS[1]
local window = tonumber(ARGV[1])
if not window or window < 1 or window >= HALF then
    return redis.error_reply('ERR distill-guard window: bad window_ms')
end
window = floor(window)

local topic = floor(tonumber(ARGV[2]) or 0) % 4096
local head = floor(tonumber(ARGV[3]) or 0) % B32
local tail = floor(tonumber(ARGV[4]) or 0) % B32
local flags = floor(tonumber(ARGV[5]) or 0) % 8
local long = flags >= 4                 -- bit 2: a message, not "thanks"
flags = flags % 4
local topic_last = floor(tonumber(ARGV[12]) or topic) % 4096
local sent = floor(tonumber(ARGV[13]) or 0) % B32
local prior = floor(tonumber(ARGV[14]) or 0) % B32
local opening = floor(tonumber(ARGV[15]) or 0) % B32
local nbytes = floor(tonumber(ARGV[6]) or 0)
if nbytes < 0 then
    nbytes = 0
elseif nbytes >= B32 then
    nbytes = B32 - 1
end

local now
if ARGV[7] and ARGV[7] ~= '' then
    now = floor(tonumber(ARGV[7]) or 0)
else
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
end
local w = math.ceil(window / SUBW)

local s = redis.call('GET', key)
local n, nxt, ver, hw, last = 0, 0, 0, 0, 0
if s and #s == SIZE then
    ver, n, nxt, hw, last = struct.unpack('<BHHI4I6', s)
end
local fresh = (ver ~= VERSION or n > RING or nxt >= RING
               or (n < RING and nxt ~= n))
if fresh then
    n, nxt = 0, 0
end

-- the state is decoded whole: one unpack is far cheaper than one per
-- record; the format is built by doubling, string.rep copies bytewise
local ring
if n == RING then
    local f = 'I4HI3I4I4I4I4I4'
    for _ = 1, 7 do
        f = f .. f
    end
    ring = { struct.unpack('<' .. f, s, ROFF + 1) }
elseif n > 0 then
    ring = { struct.unpack('<' .. string.rep('I4HI3I4I4I4I4I4', n), s,
                           ROFF + 1) }
else
    ring = {}
end

if n > 0 then
    local d = (now - ring[((nxt - 1) % RING) * NF + 1]) % B32
    if d >= HALF then
        -- this node's clock is behind the newest record (a failover):
        -- keep the ring in order
        now = now + (B32 - d)
    end
end

-- the limiter: the plain rate first, then the throttle of a penalised
-- key; both are the generic cell rate algorithm on an arrival time
local skey = KEYS[2]
local throttle_ms = floor(tonumber(ARGV[8]) or 0)
local rate_ms = floor(tonumber(ARGV[9]) or 0)
local rate_burst = floor(tonumber(ARGV[10]) or 0)
local lim = skey and redis.call('HMGET', skey, 'st', 'pu', 'tt', 'rt')
            or {}
local st = tonumber(lim[1]) or 0
local pu = tonumber(lim[2]) or 0
local tt = tonumber(lim[3]) or 0
local rt = tonumber(lim[4]) or 0
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

if skey and refused == 0 and (rate_ms > 0 or penalty > 0) then
    redis.call('HSET', skey, 'tt', tt, 'rt', rt)
    -- the throttle's time matters only while the penalty lasts
    redis.call('PEXPIRE', skey, math.max(window + penalty, rt - now,
                                         math.min(tt - now, penalty)))
end

-- provenance of the claimed history, over the whole ring (see above)
local prov, again = 0, 0
if prior ~= 0 then
    local verified, seen, resent, senders = false, false, false, 0
    for i = 0, n - 1 do
        local sv, ov = ring[i * NF + 7], ring[i * NF + 8]
        if sv == prior then
            senders = senders + 1
            if ov == opening then
                verified = true
            end
        end
        if ov == opening then
            -- 32768: provenance 2 or 3, a history it had not sent
            if ring[i * NF + 2] >= 32768 then
                seen = true
            end
        elseif sv == sent then
            resent = true
        end
    end
    verified = verified or senders == 1
    prov = verified and 1 or (seen and 3 or 2)
    -- a follow-up this key already sent in another conversation
    if verified and resent and long then
        again = 2097152
    end
end
if prov == 0 or prov == 3 then
    topic = topic_last
end
-- bit 0 of the flags: one-shot
if prov == 2 then
    flags = flags - flags % 2 + 1
elseif prov ~= 0 then
    flags = flags - flags % 2
end

local start = now - window              -- inside the window: ts > start
local b = floor(now / w)
local tf = topic + flags * 4096 + prov * 16384

-- the new record takes slot nxt; in a full ring that drops the oldest,
-- which is then the newest of all the records the ring ever dropped
local slot = nxt
local j = slot * NF
local dropped = ring[j + 1]
ring[j + 1], ring[j + 2], ring[j + 3] = now % B32, tf, 0
ring[j + 4], ring[j + 5], ring[j + 6] = head, tail, nbytes
ring[j + 7], ring[j + 8] = sent, opening
local newn = (n < RING) and n + 1 or RING
local oldest = (newn < RING) and 0 or (slot + 1) % RING

-- true times, newest first, written over the stored ones, down to the
-- first record outside the window (k: chronological position, 1-based)
local kfirst = newn
local tc, prevm = now, now % B32
for k = newn, 1, -1 do
    j = ((oldest + k - 1) % RING) * NF
    local m = ring[j + 1]
    local g = (prevm - m) % B32
    if g >= HALF or tc - g <= start then
        break
    end
    tc = tc - g
    ring[j + 1] = tc
    kfirst = k
    prevm = m
end

local evicted_ts
if n == RING and kfirst == 1 then
    local g = (prevm - dropped) % B32
    if g < HALF and tc - g > start then
        evicted_ts = tc - g
    end
end

-- statistics over the records inside the window, oldest first
local eb = evicted_ts and floor(evicted_ts / w)
local eb_count, eb_bytes = 0, 0
local sample, rbytes = newn - kfirst + 1, 0
local ntopics, nheads, ntails, htop, ltop = 0, 0, 0, 0, 0
local single, cot = 0, 0
local pcount = { 0, 0, 0 }              -- verified, fabricated, prefix
local scripted = 0
local prevts, sumsq = nil, 0
local tcnt, hcnt, lcnt = {}, {}, {}     -- by k, see below
local lt, lh, ll = 0, 0, 0              -- last k with this request's values
local nrt, nrh, nrl = 0, 0, 0           -- this request's back-references
local first = ring[((oldest + kfirst - 1) % RING) * NF + 1]

j = ((oldest + kfirst - 1) % RING) * NF
for k = kfirst, newn do
    local tsv, v, r, h, l, by = ring[j + 1], ring[j + 2], ring[j + 3],
        ring[j + 4], ring[j + 5], ring[j + 6]
    j = j + NF
    if j == RING * NF then
        j = 0
    end
    if k == newn then
        if lt > 0 then
            nrt = k - lt
        end
        if lh > 0 and head ~= 0 then
            nrh = k - lh
        end
        if ll > 0 and tail ~= 0 then
            nrl = k - ll
        end
        r = nrt + nrh * 128 + nrl * 16384 + again
    end
    if r >= 2097152 then
        scripted = scripted + 1
        r = r - 2097152
    end

    rbytes = rbytes + by
    if eb and floor(tsv / w) == eb then
        eb_count = eb_count + 1
        eb_bytes = eb_bytes + by
    end

    local tp = v % 4096
    local fl = (v - tp) / 4096
    if fl % 2 == 1 then
        single = single + 1
    end
    if fl % 4 >= 2 then
        cot = cot + 1
    end
    local pv = (fl - fl % 4) / 4
    if pv > 0 then
        pcount[pv] = pcount[pv] + 1
    end

    -- a value's count is carried along the back-references; the record
    -- referred to is then marked (negative) as not its value's last
    local c = 1
    local rt = r % 128
    if rt > 0 and k - rt >= kfirst then
        c = tcnt[k - rt]
        tcnt[k - rt] = -c
        c = c + 1
    else
        ntopics = ntopics + 1
    end
    tcnt[k] = c
    if tp == topic then
        lt = k
    end

    if h ~= 0 then
        c = 1
        local rh = ((r - rt) / 128) % 128
        if rh > 0 and k - rh >= kfirst then
            c = (hcnt[k - rh] or 0) + 1
        else
            nheads = nheads + 1
        end
        hcnt[k] = c
        if c > htop then
            htop = c
        end
        if h == head then
            lh = k
        end
    end
    if l ~= 0 then
        c = 1
        local rl = (r - r % 16384) / 16384
        if rl > 0 and k - rl >= kfirst then
            c = (lcnt[k - rl] or 0) + 1
        else
            ntails = ntails + 1
        end
        lcnt[k] = c
        if c > ltop then
            ltop = c
        end
        if l == tail then
            ll = k
        end
    end

    if prevts then
        local g = tsv - prevts
        sumsq = sumsq + g * g
    end
    prevts = tsv
end

-- this request's sub-window
local bvalid = (not fresh and hw == w and b >= last)
local bslot = b % NB
local bcount, bbytes = 0, 0
if bvalid and b == last then
    bcount, bbytes = struct.unpack('<I4I6', s, HDR + bslot * BSZ + 1)
end
bcount = bcount + 1
bbytes = bbytes + nbytes

local hdr = struct.pack('<BHHI4I6', VERSION, newn, (nxt + 1) % RING, w, b)
local bucket = struct.pack('<I4I6', bcount, bbytes)
local rec = struct.pack('<I4HI3I4I4I4I4I4', now % B32, tf,
                        nrt + nrh * 128 + nrl * 16384 + again, head, tail,
                        nbytes,
                        sent, opening)

if fresh then
    -- the whole value at its final size: SETRANGE never grows it later
    redis.call('SET', key, hdr
        .. string.rep('\0', bslot * BSZ) .. bucket
        .. string.rep('\0', (NB - bslot - 1) * BSZ)
        .. rec .. string.rep('\0', (RING - 1) * RSZ), 'PX', window)
else
    redis.call('SETRANGE', key, 0, hdr)
    if not bvalid then
        redis.call('SETRANGE', key, HDR, string.rep('\0', bslot * BSZ)
            .. bucket .. string.rep('\0', (NB - bslot - 1) * BSZ))
    else
        if b > last then
            -- sub-windows last+1 .. b start empty
            local k = math.min(b - last, NB)
            local from = (last + 1) % NB
            local k1 = math.min(k, NB - from)
            redis.call('SETRANGE', key, HDR + from * BSZ,
                       string.rep('\0', k1 * BSZ))
            if k > k1 then
                redis.call('SETRANGE', key, HDR,
                           string.rep('\0', (k - k1) * BSZ))
            end
        end
        redis.call('SETRANGE', key, HDR + bslot * BSZ, bucket)
    end
    redis.call('SETRANGE', key, ROFF + slot * RSZ, rec)
    redis.call('PEXPIRE', key, window)
end

local function round(x)
    return floor(x + 0.5)
end

local requests, bytes = sample, rbytes

if eb then
    -- more requests in the window than the ring holds: add the dropped
    -- ones from the sub-window counters, as just written: sub-window x
    -- (b - 32 .. b) in bk[x mod 33 * 2 + 1] (requests) and the next
    -- element (bytes)
    local bk
    if bvalid then
        bk = { struct.unpack('<' .. string.rep('I4I6', NB), s, HDR + 1) }
        for x = last + 1, math.min(b, last + NB) do
            bk[(x % NB) * 2 + 1], bk[(x % NB) * 2 + 2] = 0, 0
        end
    else
        bk = { 0, 0 }
        for x = 3, NB * 2 do
            bk[x] = 0
        end
    end
    bk[bslot * 2 + 1], bk[bslot * 2 + 2] = bcount, bbytes

    local bs = floor(start / w)
    local x = (eb % NB) * 2
    local c = math.max(bk[x + 1] - eb_count, 0)
    local by = math.max(bk[x + 2] - eb_bytes, 0)
    local ec, eby
    if bs == eb then
        -- the dropped records of this sub-window lie in [eb*w, evicted_ts]
        local f = (evicted_ts - start) / (evicted_ts - eb * w + 1)
        ec, eby = c * f, by * f
    else
        ec, eby = c, by
        for y = bs + 1, eb - 1 do
            x = (y % NB) * 2
            ec, eby = ec + bk[x + 1], eby + bk[x + 2]
        end
        x = (bs % NB) * 2
        local f = ((bs + 1) * w - 1 - start) / w
        ec, eby = ec + bk[x + 1] * f, eby + bk[x + 2] * f
    end
    requests = requests + round(ec)
    bytes = bytes + round(eby)
end

-- entropy from each topic's count, left positive at its last record
local entropy = 0
if ntopics > 1 then
    local sum = 0
    for k = kfirst, newn do
        local c = tcnt[k]
        if c > 1 then
            sum = sum + c * math.log(c)
        end
    end
    entropy = (math.log(sample) - sum / sample) / math.log(2)
    if entropy < 0 then
        entropy = 0
    end
end

local templates
if nheads > 0 and ntails > 0 then
    templates = math.min(nheads, ntails)
else
    templates = nheads + ntails
end

local gap_mean, gap_cv = 0, 0
if sample > 1 then
    gap_mean = (prevts - first) / (sample - 1)
    if gap_mean > 0 then
        local var = sumsq / (sample - 1) - gap_mean * gap_mean
        if var > 0 then
            gap_cv = math.sqrt(var) / gap_mean
        end
    end
end

return {
    requests,
    sample,
    ntopics,
    round(entropy * 1000),
    templates,
    round(math.max(htop, ltop) * 1000 / sample),
    round(single * 1000 / sample),
    round(cot * 1000 / sample),
    round(gap_mean),
    round(gap_cv * 1000),
    bytes,
    st,
    penalty,
    refused,
    retry,
    remaining,
    now,
    round(pcount[1] * 1000 / sample),
    round(pcount[2] * 1000 / sample),
    round(pcount[3] * 1000 / sample),
    prov,
    round(scripted * 1000 / sample)
}
