/*
 * store.c — the Redis layer (see store.h for the key layout and the contract).
 *
 * How it works:
 * - One `store` owns one connection: a netio stream (plain TCP, unix socket or
 *   TLS — one code path, see netio.h) with hiredis' redisReader parsing the
 *   replies; hiredis 0.14 has no TLS, so it formats and parses but does no I/O.
 *   Every public call builds its commands into a `batch` of pre-formatted RESP
 *   buffers, writes them all, then reads all replies: one pipelined round trip. Keeping the
 * formatted buffers lets us resend exactly the commands that came back NOSCRIPT (after a SCRIPT
 * FLUSH or a failover) without re-running the ones that succeeded; re-running a successful
 * observation would turn its "new" into "seen".
 * - Connecting is lazy and includes a handshake in one round trip: AUTH, SELECT
 *   and SCRIPT LOAD of the four Lua scripts below. Any I/O error or timeout
 *   drops the connection; the next call reconnects at once, and failed connects
 *   back off exponentially (100 ms .. 2 s) during which calls fail immediately
 *   with the last error, so a caller never waits on a dead Redis for longer than
 *   the configured timeouts.
 * - With wait_replicas, store_observe appends `WAIT n timeout` to its batch, so
 *   the replicas' acknowledgement costs no extra round trip; when NOSCRIPT
 *   commands are resent, the WAIT is resent after them.
 * - The new-terms decision and the alert write happen inside one Lua script per
 *   observation (OBSERVE_LUA), which is what makes "exactly one alert per new
 *   term" hold across threads, replicas and retried deliveries.
 * - Listing runs a Lua script (LIST_LUA) that picks the smallest index zset,
 *   walks it newest first from the cursor position, filters on the alert hash
 *   fields and returns matching ids; a second round trip fetches the hashes.
 *   Cursors are base64url("created_ms:id"), a position, so new alerts never
 *   shift pages.
 */
#include "store.h"

#include "base64.h"
#include "log.h"
#include "netio.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- Lua scripts ------------------------------------------------------------ */

/* Every observation of a delivery (or a chunk of at most STORE_OBS_CHUNK of
 * them), in order, in one script call: one script run per delivery instead of
 * one per observation. Key names are built in the script from the rule id,
 * term hash, alert id and indexed values (no KEYS: one Redis, not a cluster).
 * What is the same for many observations is sent once per call: a "profile"
 * per distinct (rule, kind, mode, times, threshold, suppression).
 * ARGV[1] retention_ms  ARGV[2] cap  ARGV[3] n observations  ARGV[4] np
 * profiles; then np profiles of 9: rule_id, kind n(ew_terms)|q(uery)|
 * t(hreshold), mode L(ive)|R(learn)|B(ackfill), seen_ms, ttl_ms (the history
 * window, or the threshold window), created_ms, threshold value, cardinality
 * value (0 = none), suppression duration ms (0 = none); then n observations,
 * each: its profile's number (negative: the document is deferred, see
 * store_obs.defer_doc) and its term (or threshold group) hash, followed by
 *   new_terms, live, not deferred: alert id, doc, account, user;
 *   new_terms otherwise: nothing;
 *   query: alert id, doc, account, user;
 *   threshold: alert id, event time ms, cardinality value hashes
 *     (comma-separated), and unless deferred: doc, account, user;
 * and after those, when the profile suppresses and the observation carries
 * an alert id and doc, the suppression group hash. A live sighting of a known
 * term (the common case) is thus 2 arguments and one SET.
 * Answers one element per observation: its code, or, when the observation has
 * threshold figures or an owner, {code, count, cardinality, first_event_ms,
 * last_event_ms, owner}. Codes: 0 nothing to alert (term seen before /
 * threshold not reached / duplicate event), 1 alert written, 2 the alert id
 * was already stored, 3 would alert but learning/backfill, 4 backfill too old,
 * 5 suppressed: counted on alert `owner`, 6 the document was deferred and is
 * needed (new_terms: the term is new; threshold: the event would reach the
 * threshold, or an earlier event of its group in this call did): nothing was
 * written for that observation, not even its events_matched count, and the
 * caller sends it again with its document. count..last_event_ms describe a
 * threshold group (when it was reached: the alert's figures).
 * Per-rule events_matched counts are summed and written once at the end;
 * history_since_ms is set at a rule's first sighting in the call. A known
 * term costs one command, in the loop itself: SET ... GET both refreshes it
 * and says whether it existed (Redis >= 6.2); only a new term (the SET has
 * written it: a deferred document deletes it again) goes on to new_terms(). */
static const char OBSERVE_LUA[] =
    "local retention, cap = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local n, np = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local P_rule, P_kind, P_mode, P_seen, P_ttl, P_ttls = {}, {}, {}, {}, {}, {}\n"
    "local P_created = {}\n"
    "local P_thr, P_cval, P_supp, P_key, P_nf, P_nfd = {}, {}, {}, {}, {}, {}\n"
    "local j = 5\n"
    "for p = 1, np do\n"
    "  local rule, kind, mode = ARGV[j], ARGV[j + 1], ARGV[j + 2]\n"
    "  local supp = tonumber(ARGV[j + 8])\n"
    "  local s = supp > 0 and 1 or 0\n"
    "  P_rule[p], P_kind[p], P_mode[p] = rule, kind, mode\n"
    "  P_seen[p], P_ttls[p], P_created[p] = ARGV[j + 3], ARGV[j + 4], ARGV[j + 5]\n"
    "  P_ttl[p] = tonumber(ARGV[j + 4])\n"
    "  P_thr[p], P_cval[p], P_supp[p] = tonumber(ARGV[j + 6]), tonumber(ARGV[j + 7]), supp\n"
    "  if kind == 'n' then\n"
    "    P_key[p], P_nfd[p] = 'nt:term:' .. rule .. ':', 0\n"
    "    P_nf[p] = mode == 'L' and 4 + s or 0\n"
    "  elseif kind == 'q' then\n"
    "    P_key[p], P_nf[p], P_nfd[p] = '', 4 + s, 4 + s\n"
    "  else\n"
    "    P_key[p], P_nf[p], P_nfd[p] = 'nt:thr:' .. rule .. ':', 6 + s, 3\n"
    "  end\n"
    "  j = j + 9\n"
    "end\n"
    /* the observation at hand */
    "local h, rule, mode, seen, ttl, ttls, created, supp_ms, defer\n"
    "local term, id, doc, acct, user, etime, cardv, supph\n"
    "local matched, since_done, trimmed, late_groups = {}, {}, {}, {}\n"
    "local function count_matched()\n"
    "  matched[rule] = (matched[rule] or 0) + 1\n"
    "end\n"
    "local function set_since()\n"
    "  if not since_done[rule] then\n"
    "    redis.call('HSETNX', 'nt:rule:' .. rule .. ':stats', 'history_since_ms', seen)\n"
    "    since_done[rule] = true\n"
    "  end\n"
    "end\n"
    "local function create_alert(extra)\n"
    "  local alert, created_n = 'nt:alert:' .. (id ~= '' and id or '-'), tonumber(created)\n"
    "  if redis.call('EXISTS', alert) == 1 then return 2 end\n"
    "  local stats = 'nt:rule:' .. rule .. ':stats'\n"
    "  redis.call('HSET', alert, 'doc', doc, 'status', 'open', 'created_ms', created,\n"
    "    'updated_ms', created, 'rule_id', rule)\n"
    "  if #extra > 0 then redis.call('HSET', alert, unpack(extra)) end\n"
    "  local idx = {'nt:alerts', 'nt:alerts:rule:' .. rule, 'nt:alerts:status:open'}\n"
    "  if acct ~= '' then\n"
    "    redis.call('HSET', alert, 'account', acct)\n"
    "    idx[#idx + 1] = 'nt:alerts:account:' .. acct\n"
    "  end\n"
    "  if user ~= '' then\n"
    "    redis.call('HSET', alert, 'user', user)\n"
    "    idx[#idx + 1] = 'nt:alerts:user:' .. user\n"
    "  end\n"
    "  redis.call('PEXPIRE', alert, retention)\n"
    "  local cutoff = string.format('(%.0f', created_n - retention)\n"
    "  local function drop(old)\n"
    "    local key = 'nt:alert:' .. old\n"
    "    local f = redis.call('HMGET', key, 'rule_id', 'account', 'user', 'status')\n"
    "    redis.call('ZREM', 'nt:alerts', old)\n"
    "    if f[1] then redis.call('ZREM', 'nt:alerts:rule:' .. f[1], old) end\n"
    "    if f[2] then redis.call('ZREM', 'nt:alerts:account:' .. f[2], old) end\n"
    "    if f[3] then redis.call('ZREM', 'nt:alerts:user:' .. f[3], old) end\n"
    "    if f[4] then redis.call('ZREM', 'nt:alerts:status:' .. f[4], old) end\n"
    "    redis.call('DEL', key, key .. ':suppressed')\n"
    "  end\n"
    "  for _, k in ipairs(idx) do\n"
    "    redis.call('ZADD', k, created, id)\n"
    "    redis.call('PEXPIRE', k, retention)\n"
    "  end\n"
    "  for _, old in ipairs(redis.call('ZRANGEBYSCORE', 'nt:alerts', '-inf', cutoff,\n"
    "      'LIMIT', 0, 100)) do drop(old) end\n"
    "  local excess = redis.call('ZCARD', 'nt:alerts') - cap\n"
    "  if excess > 0 then\n"
    "    if excess > 100 then excess = 100 end\n"
    "    for _, old in ipairs(redis.call('ZRANGE', 'nt:alerts', 0, excess - 1)) do drop(old) end\n"
    "  end\n"
    "  for _, k in ipairs(idx) do redis.call('ZREMRANGEBYSCORE', k, '-inf', cutoff) end\n"
    "  redis.call('HINCRBY', stats, 'alerts', 1)\n"
    "  local last = tonumber(redis.call('HGET', stats, 'last_alert_ms'))\n"
    "  if last == nil or created_n > last then\n"
    "    redis.call('HSET', stats, 'last_alert_ms', created)\n"
    "  end\n"
    /* outputs */
    "  if redis.call('EXISTS', 'nt:outputs:stream') == 1 then\n"
    "    redis.call('XADD', 'nt:outputs:stream', 'MAXLEN', '~', '100000', '*', 'alert', id,\n"
    "      'event', 'trigger')\n"
    "  end\n"
    /* end outputs */
    "  return 1\n"
    "end\n"
    "local function alert_or_suppress(extra)\n"
    "  if supp_ms > 0 then\n"
    "    local skey = 'nt:supp:' .. rule .. ':' .. supph\n"
    "    local owner = redis.call('GET', skey)\n"
    "    if owner == id then return 2, '' end\n"
    "    if owner then\n"
    "      local okey = 'nt:alert:' .. owner\n"
    "      local status = redis.call('HGET', okey, 'status')\n"
    "      if status and status ~= 'closed' then\n"
    "        if redis.call('SADD', okey .. ':suppressed', id) == 1 then\n"
    "          redis.call('HINCRBY', okey, 'supp_docs_count', 1)\n"
    "          local e = tonumber(redis.call('HGET', okey, 'supp_end_ms'))\n"
    "          if e == nil or tonumber(seen) > e then\n"
    "            redis.call('HSET', okey, 'supp_end_ms', seen)\n"
    "          end\n"
    "          redis.call('PEXPIRE', okey .. ':suppressed', retention)\n"
    "        end\n"
    "        return 5, owner\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  local code = create_alert(extra)\n"
    "  if code == 1 and supp_ms > 0 then\n"
    "    redis.call('HSET', 'nt:alert:' .. id, 'supp_start_ms', seen, 'supp_end_ms', seen,\n"
    "      'supp_docs_count', 0)\n"
    "    redis.call('SET', 'nt:supp:' .. rule .. ':' .. supph, id, 'PX', supp_ms)\n"
    "  end\n"
    "  return code, ''\n"
    "end\n"
    /* new_terms, after the fast path: a backfill sighting, or a new term (the SET wrote it) */
    "local function new_terms()\n"
    "  local key, stats = P_key[h] .. term, 'nt:rule:' .. rule .. ':stats'\n"
    "  if mode == 'B' then\n"
    "    local since = tonumber(redis.call('HGET', stats, 'history_since_ms'))\n"
    "    if since == nil or tonumber(seen) < since then\n"
    "      redis.call('HSET', stats, 'history_since_ms', seen)\n"
    "    end\n"
    "    if ttl <= 0 then return 4, 0, 0, 0, 0, '' end\n"
    "    local pttl = redis.call('PTTL', key)\n"
    "    if pttl == -2 then\n"
    "      redis.call('SET', key, seen, 'PX', ttls)\n"
    "      return 3, 0, 0, 0, 0, ''\n"
    "    end\n"
    "    if pttl >= 0 and ttl > pttl then redis.call('SET', key, seen, 'PX', ttls) end\n"
    "    return 0, 0, 0, 0, 0, ''\n"
    "  end\n"
    "  if defer then\n"
    "    redis.call('DEL', key)\n"
    "    return 6, 0, 0, 0, 0, ''\n"
    "  end\n"
    "  count_matched()\n"
    "  set_since()\n"
    "  if mode ~= 'L' then return 3, 0, 0, 0, 0, '' end\n"
    "  local code, owner = alert_or_suppress({'window_ms', ttls,\n"
    "    'history_since_ms', redis.call('HGET', stats, 'history_since_ms')})\n"
    "  return code, 0, 0, 0, 0, owner\n"
    "end\n"
    "local function threshold()\n"
    "  local group = P_key[h] .. term\n"
    "  local win, used, card = group .. ':w', group .. ':u', group .. ':c'\n"
    "  local groups = P_key[h] .. 'groups'\n"
    "  local now = tonumber(seen)\n"
    "  local from = now - ttl\n"
    "  local keep = ttl + 60000\n"
    /* a retried event (in the window, or counted already, since from) changes */
    /* nothing: asking before trimming spares a retry the trims */
    "  local member = etime .. ':' .. id\n"
    "  local sw = redis.call('ZSCORE', win, member)\n"
    "  local su = not (sw and tonumber(sw) >= from) and redis.call('ZSCORE', used, member)\n"
    "  if (sw and tonumber(sw) >= from) or (su and tonumber(su) >= from) then\n"
    "    count_matched()\n"
    "    return 0, 0, 0, 0, 0, ''\n"
    "  end\n"
    /* a live delivery's sightings share one clock, so one cut per key: trim once */
    "  local cut = string.format('(%.0f', from)\n"
    "  for _, k in ipairs({win, used, card, groups}) do\n"
    "    if trimmed[k] ~= cut then\n"
    "      redis.call('ZREMRANGEBYSCORE', k, '-inf', cut)\n"
    "      trimmed[k] = cut\n"
    "    end\n"
    "  end\n"
    "  local cval = P_cval[h]\n"
    "  local pending\n"
    /* a deferred document: an event that would reach the threshold (or follows */
    /* one of its group that would, in this call) changes nothing and asks for it */
    "  if defer then\n"
    "    local late = late_groups[win]\n"
    "    if not late then pending = redis.call('ZCARD', win) end\n"
    "    if not late and pending + 1 >= P_thr[h] then\n"
    "      late = true\n"
    "      if cval > 0 then\n"
    "        local distinct, seen_v = redis.call('ZCARD', card), {}\n"
    "        for v in string.gmatch(cardv, '[^,]+') do\n"
    "          if not seen_v[v] and not redis.call('ZSCORE', card, v) then\n"
    "            distinct = distinct + 1\n"
    "          end\n"
    "          seen_v[v] = true\n"
    "        end\n"
    "        late = distinct >= cval\n"
    "      end\n"
    "    end\n"
    "    if late then\n"
    "      late_groups[win] = true\n"
    "      return 6, 0, 0, 0, 0, ''\n"
    "    end\n"
    "  end\n"
    "  count_matched()\n"
    "  redis.call('ZADD', win, seen, member)\n"
    "  redis.call('PEXPIRE', win, keep)\n"
    "  for v in string.gmatch(cardv, '[^,]+') do redis.call('ZADD', card, seen, v) end\n"
    "  if cardv ~= '' then redis.call('PEXPIRE', card, keep) end\n"
    "  local count = pending and pending + 1 or redis.call('ZCARD', win)\n"
    "  local distinct = redis.call('ZCARD', card)\n"
    "  if count < P_thr[h] or (cval > 0 and distinct < cval) then\n"
    "    redis.call('ZADD', groups, seen, group)\n"
    "    redis.call('PEXPIRE', groups, keep)\n"
    "    return 0, count, distinct, 0, 0, ''\n"
    "  end\n"
    "  local first, last\n"
    "  for _, m in ipairs(redis.call('ZRANGE', win, 0, -1)) do\n"
    "    local t = tonumber(string.match(m, '^(-?%d+):'))\n"
    "    if t then\n"
    "      if first == nil or t < first then first = t end\n"
    "      if last == nil or t > last then last = t end\n"
    "    end\n"
    "  end\n"
    "  redis.call('ZUNIONSTORE', used, 2, used, win, 'AGGREGATE', 'MAX')\n"
    "  redis.call('PEXPIRE', used, keep)\n"
    "  redis.call('DEL', win, card)\n"
    "  redis.call('ZREM', groups, group)\n"
    "  first, last = first or now, last or now\n"
    "  if mode ~= 'L' then return 3, count, distinct, first, last, '' end\n"
    "  local code, owner = alert_or_suppress({'thr_count', count, 'thr_card', distinct,\n"
    "    'thr_first_ms', first, 'thr_last_ms', last, 'thr_from_ms', now - ttl})\n"
    "  return code, count, distinct, first, last, owner\n"
    "end\n"
    "local out = {}\n"
    "for i = 1, n do\n"
    "  h, term = tonumber(ARGV[j]), ARGV[j + 1]\n"
    "  defer = h < 0\n"
    "  if defer then h = -h end\n"
    "  rule, mode, seen = P_rule[h], P_mode[h], P_seen[h]\n"
    "  local kind = P_kind[h]\n"
    /* the common case first: a live sighting of a known term is one SET */
    "  if kind == 'n' and mode ~= 'B' and\n"
    "      redis.call('SET', P_key[h] .. term, seen, 'PX', P_ttls[h], 'GET') then\n"
    "    matched[rule] = (matched[rule] or 0) + 1\n"
    "    if not since_done[rule] then set_since() end\n"
    "    out[i] = 0\n"
    "    j = j + 2 + (defer and 0 or P_nf[h])\n"
    "  else\n"
    "    ttl, ttls, created, supp_ms = P_ttl[h], P_ttls[h], P_created[h], P_supp[h]\n"
    "    id, doc, acct, user, etime, cardv, supph = '', '', '', '', '', '', '-'\n"
    "    local k = j + 2\n"
    "    if kind == 't' then\n"
    "      id, etime, cardv = ARGV[k], ARGV[k + 1], ARGV[k + 2]\n"
    "      k = k + 3\n"
    "      if not defer then\n"
    "        doc, acct, user = ARGV[k], ARGV[k + 1], ARGV[k + 2]\n"
    "        k = k + 3\n"
    "      end\n"
    "    elseif kind == 'q' or (mode == 'L' and not defer) then\n"
    "      id, doc, acct, user = ARGV[k], ARGV[k + 1], ARGV[k + 2], ARGV[k + 3]\n"
    "      k = k + 4\n"
    "    end\n"
    "    local nf = defer and P_nfd[h] or P_nf[h]\n"
    "    if supp_ms > 0 and k < j + 2 + nf then supph = ARGV[k] end\n"
    "    j = j + 2 + nf\n"
    "    local code, c, d, f, l, owner\n"
    "    if kind == 'n' then\n"
    "      code, c, d, f, l, owner = new_terms()\n"
    "    elseif kind == 'q' then\n"
    "      count_matched()\n"
    "      if mode ~= 'L' then\n"
    "        code, c, d, f, l, owner = 3, 0, 0, 0, 0, ''\n"
    "      elseif redis.call('EXISTS', 'nt:alert:' .. (id ~= '' and id or '-')) == 1 then\n"
    "        code, c, d, f, l, owner = 2, 0, 0, 0, 0, ''\n"
    "      else\n"
    "        code, owner = alert_or_suppress({})\n"
    "        c, d, f, l = 0, 0, 0, 0\n"
    "      end\n"
    "    else\n"
    "      code, c, d, f, l, owner = threshold()\n"
    "    end\n"
    "    if c == 0 and d == 0 and f == 0 and l == 0 and owner == '' then\n"
    "      out[i] = code\n"
    "    else\n"
    "      out[i] = {code, c, d, f, l, owner}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if j ~= #ARGV + 1 then return redis.error_reply('observe: malformed arguments') end\n"
    "for r, v in pairs(matched) do\n"
    "  redis.call('HINCRBY', 'nt:rule:' .. r .. ':stats', 'events_matched', v)\n"
    "end\n"
    "return out\n";

/* KEYS: the candidate index zsets (the smallest is walked). ARGV[1] max score
 * ARGV[2] min score ARGV[3] cursor score ('' = none) ARGV[4] cursor id ARGV[5]
 * limit ARGV[6] most entries to examine ARGV[7..10] status, rule_id, account,
 * user ('' = any). Returns {{id, score, ...}, last score, last id, more}. */
static const char LIST_LUA[] =
    "local best, bestn\n"
    "for _, k in ipairs(KEYS) do\n"
    "  local n = redis.call('ZCARD', k)\n"
    "  if best == nil or n < bestn then best, bestn = k, n end\n"
    "end\n"
    "local limit, scan = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local cs, cid = tonumber(ARGV[3]), ARGV[4]\n"
    "local want = {ARGV[7], ARGV[8], ARGV[9], ARGV[10]}\n"
    "local function at_or_after(a, b)\n"
    "  if a == b then return true end\n"
    "  for i = 1, math.min(#a, #b) do\n"
    "    local x, y = string.byte(a, i), string.byte(b, i)\n"
    "    if x ~= y then return x > y end\n"
    "  end\n"
    "  return #a > #b\n"
    "end\n"
    "local out, examined, off, more = {}, 0, 0, 0\n"
    "local last_s, last_id = '', ''\n"
    "if bestn == 0 then return {out, last_s, last_id, more} end\n"
    "while true do\n"
    "  local r = redis.call('ZREVRANGEBYSCORE', best, ARGV[1], ARGV[2], 'WITHSCORES',\n"
    "    'LIMIT', off, 256)\n"
    "  local n = #r / 2\n"
    "  off = off + n\n"
    "  local stopped = false\n"
    "  for i = 1, #r, 2 do\n"
    "    local id, sc = r[i], r[i + 1]\n"
    "    if not (cs and tonumber(sc) == cs and at_or_after(id, cid)) then\n"
    "      if #out >= 2 * limit or examined >= scan then more = 1 stopped = true break end\n"
    "      examined = examined + 1\n"
    "      last_s, last_id = sc, id\n"
    "      local f = redis.call('HMGET', 'nt:alert:' .. id, 'status', 'rule_id', 'account', "
    "'user')\n"
    "      if f[1] then\n"
    "        local ok = true\n"
    "        for j = 1, 4 do\n"
    "          if want[j] ~= '' and f[j] ~= want[j] then ok = false end\n"
    "        end\n"
    "        if ok then out[#out + 1] = id out[#out + 1] = sc end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if stopped or n < 256 then break end\n"
    "end\n"
    "return {out, last_s, last_id, more}\n";

/* KEYS[1] alert hash. ARGV[1] id ARGV[2] status ARGV[3] reason ('' = none)
 * ARGV[4] now ARGV[5] retention_ms. Returns the hash (HGETALL) or nil. */
static const char STATUS_LUA[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return false end\n"
    "local f = redis.call('HMGET', KEYS[1], 'status', 'created_ms')\n"
    "if ARGV[3] == '' then redis.call('HDEL', KEYS[1], 'status_reason')\n"
    "else redis.call('HSET', KEYS[1], 'status_reason', ARGV[3]) end\n"
    "redis.call('HSET', KEYS[1], 'status', ARGV[2], 'updated_ms', ARGV[4])\n"
    "if f[1] ~= ARGV[2] then\n"
    "  if f[1] then redis.call('ZREM', 'nt:alerts:status:' .. f[1], ARGV[1]) end\n"
    "  local k = 'nt:alerts:status:' .. ARGV[2]\n"
    "  redis.call('ZADD', k, f[2] or ARGV[4], ARGV[1])\n"
    "  redis.call('PEXPIRE', k, ARGV[5])\n"
    /* outputs (deliver.c): closing an alert queues a resolve event (PagerDuty) */
    "  if ARGV[2] == 'closed' and redis.call('EXISTS', 'nt:outputs:stream') == 1 then\n"
    "    redis.call('XADD', 'nt:outputs:stream', 'MAXLEN', '~', '100000', '*', 'alert',\n"
    "      ARGV[1], 'event', 'resolve')\n"
    "  end\n"
    /* end outputs */
    "end\n"
    "return redis.call('HGETALL', KEYS[1])\n";

/* The bulk form, all or nothing: KEYS = the alert hashes; ARGV[1] status
 * ARGV[2] reason ('' = none) ARGV[3] now ARGV[4] retention_ms ARGV[4+i] the id
 * of KEYS[i]. When any hash is missing, changes nothing and returns
 * {0, {missing ids}}; else updates every alert and returns {1, #KEYS}. */
static const char STATUS_MANY_LUA[] =
    "local missing = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  if redis.call('EXISTS', k) == 0 then missing[#missing + 1] = ARGV[4 + i] end\n"
    "end\n"
    "if #missing > 0 then return {0, missing} end\n"
    "for i, k in ipairs(KEYS) do\n"
    "  local id = ARGV[4 + i]\n"
    "  local f = redis.call('HMGET', k, 'status', 'created_ms')\n"
    "  if ARGV[2] == '' then redis.call('HDEL', k, 'status_reason')\n"
    "  else redis.call('HSET', k, 'status_reason', ARGV[2]) end\n"
    "  redis.call('HSET', k, 'status', ARGV[1], 'updated_ms', ARGV[3])\n"
    "  if f[1] ~= ARGV[1] then\n"
    "    if f[1] then redis.call('ZREM', 'nt:alerts:status:' .. f[1], id) end\n"
    "    local s = 'nt:alerts:status:' .. ARGV[1]\n"
    "    redis.call('ZADD', s, f[2] or ARGV[3], id)\n"
    "    redis.call('PEXPIRE', s, ARGV[4])\n"
    /* outputs (deliver.c): closing an alert queues a resolve event (PagerDuty) */
    "    if ARGV[1] == 'closed' and redis.call('EXISTS', 'nt:outputs:stream') == 1 then\n"
    "      redis.call('XADD', 'nt:outputs:stream', 'MAXLEN', '~', '100000', '*', 'alert', id,\n"
    "        'event', 'resolve')\n"
    "    end\n"
    /* end outputs */
    "  end\n"
    "end\n"
    "return {1, #KEYS}\n";

/* KEYS[1] nt:exceptions KEYS[2] nt:exceptions:version KEYS[3]
 * nt:exceptions:rule (id -> the item's rule_id, '' for an item without one).
 * ARGV[1] c(reate) | r(eplace) | d(elete) ARGV[2] id ARGV[3] json ARGV[4]
 * rule_id ('' = none) ARGV[5] most items (0 = no limit) ARGV[6] most items
 * per rule_id (0 = no limit). Returns the new version; 0 when the id exists
 * (create) / is absent (replace, delete); -1 when the store holds the most
 * items already (create); -2 when the item's rule_id has the most items. Items
 * written before nt:exceptions:rule existed are indexed (cjson) on first use. */
static const char EXCEPTION_LUA[] =
    "local op, id = ARGV[1], ARGV[2]\n"
    "if op == 'd' then\n"
    "  if redis.call('HDEL', KEYS[1], id) == 0 then return 0 end\n"
    "  redis.call('HDEL', KEYS[3], id)\n"
    "  return redis.call('INCR', KEYS[2])\n"
    "end\n"
    "local exists = redis.call('HEXISTS', KEYS[1], id) == 1\n"
    "if (op == 'c') == exists then return 0 end\n"
    "local max_total, max_rule = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "if op == 'c' and max_total > 0 and redis.call('HLEN', KEYS[1]) >= max_total then\n"
    "  return -1\n"
    "end\n"
    "if max_rule > 0 then\n"
    "  if redis.call('HLEN', KEYS[3]) < redis.call('HLEN', KEYS[1]) then\n"
    "    for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do\n"
    "      if redis.call('HEXISTS', KEYS[3], k) == 0 then\n"
    "        local ok, doc = pcall(cjson.decode, redis.call('HGET', KEYS[1], k))\n"
    "        local r = ''\n"
    "        if ok and type(doc) == 'table' and type(doc.rule_id) == 'string' then\n"
    "          r = doc.rule_id\n"
    "        end\n"
    "        redis.call('HSET', KEYS[3], k, r)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  local n, map = 0, redis.call('HGETALL', KEYS[3])\n"
    "  for i = 1, #map, 2 do\n"
    "    if map[i + 1] == ARGV[4] and map[i] ~= id and\n"
    "       redis.call('HEXISTS', KEYS[1], map[i]) == 1 then n = n + 1 end\n"
    "  end\n"
    "  if n >= max_rule then return -2 end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], id, ARGV[3])\n"
    "redis.call('HSET', KEYS[3], id, ARGV[4])\n"
    "return redis.call('INCR', KEYS[2])\n";

enum {
    SCRIPT_OBSERVE,
    SCRIPT_LIST,
    SCRIPT_STATUS,
    SCRIPT_EXCEPTION,
    SCRIPT_STATUS_MANY,
    SCRIPT_COUNT
};

static const char *const script_text[SCRIPT_COUNT] = {OBSERVE_LUA, LIST_LUA, STATUS_LUA,
                                                      EXCEPTION_LUA, STATUS_MANY_LUA};

/* ---- the store ---------------------------------------------------------------- */

#define STORE_BACKOFF_FIRST_MS 100
#define STORE_BACKOFF_MAX_MS 2000
#define STORE_LIST_SCAN 5000
#define STORE_LIST_MAX 1000
#define STORE_ID_MAX 128
#define STORE_BULK_MAX 1000
#define STORE_EXCEPTION_PAGE_MAX 1000

struct store {
    redis_url url;
    char *password; /* effective: the config's, else the URL's (owned) */
    int connect_timeout_ms, command_timeout_ms;
    int wait_replicas, wait_timeout_ms; /* WAIT after observations; 0 = off */
    nt_time_ms retention_ms;
    size_t alert_cap, reject_cap;
    char endpoint[320];
    netio_tls *tls; /* rediss:// only (owned) */

    /* The connection: a byte stream, hiredis' reply parser fed from it, and
     * the formatted commands waiting for the next write. io == NULL while
     * disconnected. */
    netio *io;
    redisReader *reader;
    char *wbuf;
    size_t wlen, wcap;

    char sha[SCRIPT_COUNT][41];
    int ever_connected;
    int64_t retry_at_ms; /* monotonic; no connect attempt before this */
    int backoff_ms;
    char last_error[NT_ERR_MSG_MAX];
    store_counters counters;
};

static int64_t mono_us(void)
{
    return nt_mono_ns() / 1000;
}

/* Every NT_ERR_STORE leaves through here: counted, and prefixed with the
 * endpoint. store_failf(s, err, fmt, ...) evaluates to NT_ERR_STORE (a macro
 * so that static analyzers, which do not follow variadic calls, see that). */
static void store_fail_note(store *s, nt_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void store_fail_note(store *s, nt_err *err, const char *fmt, ...)
{
    char msg[NT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->counters.errors++;
    nt_fail(err, NT_ERR_STORE, "redis %s: %s", s->endpoint, msg);
}
#define store_failf(...) (store_fail_note(__VA_ARGS__), NT_ERR_STORE)

static nt_status store_nomem(nt_err *err)
{
    nt_fail(err, NT_ERR_NOMEM, "out of memory");
    return NT_ERR_NOMEM;
}

/* ---- the connection: bytes through netio, RESP through hiredis ----------------- */

/* Drops the connection, with the parser state and any queued bytes. */
static void conn_drop(store *s)
{
    netio_close(s->io);
    s->io = NULL;
    if (s->reader) redisReaderFree(s->reader);
    s->reader = NULL;
    s->wlen = 0;
}

/* Queues one formatted command for the next conn_flush. -1 on OOM. */
/* Decimal digits of x into out (at least 21 bytes, no NUL); returns the length. */
static size_t fmt_ll(char *out, long long x)
{
    char tmp[24];
    size_t n = 0;
    unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t o = 0;
    if (x < 0) out[o++] = '-';
    while (n)
        out[o++] = tmp[--n];
    return o;
}

/* The RESP array of bulk strings for argv[0..argc) in one malloc'd buffer (what
 * redisFormatCommandArgv gives, without a vsnprintf per argument: that was
 * 5% of the pack's instructions per record). lens NULL: every argument is a
 * C string, as with hiredis. NULL when out of memory. */
static char *resp_format(int argc, const char **argv, const size_t *lens, size_t *outlen)
{
    char num[24];
    size_t total = 1 + fmt_ll(num, argc) + 2;
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        total += 1 + fmt_ll(num, (long long)n) + 2 + n + 2;
    }
    char *out = malloc(total);
    if (!out) return NULL;
    char *p = out;
    *p++ = '*';
    p += fmt_ll(p, argc);
    *p++ = '\r', *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        *p++ = '$';
        p += fmt_ll(p, (long long)n);
        *p++ = '\r', *p++ = '\n';
        if (n) memcpy(p, argv[i], n);
        p += n;
        *p++ = '\r', *p++ = '\n';
    }
    *outlen = (size_t)(p - out);
    return out;
}

static int conn_queue(store *s, const char *cmd, size_t len)
{
    if (len > s->wcap - s->wlen) {
        size_t cap = s->wcap ? s->wcap : 4096;
        while (cap - s->wlen < len)
            cap *= 2;
        char *nb = realloc(s->wbuf, cap);
        if (!nb) return -1;
        s->wbuf = nb;
        s->wcap = cap;
    }
    memcpy(s->wbuf + s->wlen, cmd, len);
    s->wlen += len;
    return 0;
}

/* Queues a command from a hiredis format ("SCRIPT LOAD %s"). -1 on OOM. */
static int conn_queuef(store *s, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0) return -1;
    int rc = conn_queue(s, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

/* Writes every queued byte. */
static nt_status conn_flush(store *s, int timeout_ms, nt_err *err)
{
    nt_status st = netio_write(s->io, s->wbuf, s->wlen, timeout_ms, err);
    s->wlen = 0;
    return st;
}

/* Reads the next reply; each wait for bytes lasts at most timeout_ms. */
static nt_status conn_reply(store *s, redisReply **out, int timeout_ms, nt_err *err)
{
    char buf[16384];
    *out = NULL;
    for (;;) {
        void *r = NULL;
        if (redisReaderGetReply(s->reader, &r) != REDIS_OK)
            return nt_fail(err, NT_ERR_IO, "protocol error: %s", s->reader->errstr);
        if (r) {
            *out = r;
            return NT_OK;
        }
        size_t got = 0;
        nt_status st = netio_read(s->io, buf, sizeof buf, &got, timeout_ms, err);
        if (st != NT_OK) return st;
        if (redisReaderFeed(s->reader, buf, got) != REDIS_OK)
            return nt_fail(err, NT_ERR_IO, "protocol error: %s", s->reader->errstr);
    }
}

/* Drops a connection that failed mid-exchange; the next call reconnects at once
 * (a restarted Redis should cost one failed call, not a backoff). */
static nt_status store_io_fail(store *s, const nt_err *io, nt_err *err)
{
    conn_drop(s);
    s->retry_at_ms = 0;
    return store_failf(s, err, "%s", io->msg);
}

static int reply_is_error(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR;
}

/* ---- connecting ------------------------------------------------------------------- */

/* Connection failures are logged once per distinct cause for the whole process
 * (a pool of connections failing the same way, again at every backoff step, is
 * one line), and the recovery once. This is the module's only process-wide
 * state; it exists because a TLS or AUTH failure is otherwise visible only as
 * /readyz answering 503. */
static pthread_mutex_t store_log_lock = PTHREAD_MUTEX_INITIALIZER;
static char store_log_last[NT_ERR_MSG_MAX];

static void store_log_connect(const store *s, const char *failure)
{
    pthread_mutex_lock(&store_log_lock);
    int changed = failure ? strcmp(store_log_last, failure) != 0 : store_log_last[0] != '\0';
    if (changed) snprintf(store_log_last, sizeof store_log_last, "%s", failure ? failure : "");
    pthread_mutex_unlock(&store_log_lock);
    if (!changed) return;
    if (failure)
        log_msg(NT_LOG_ERROR, "redis_connect", "redis %s%s: cannot connect: %s", s->endpoint,
                s->url.is_tls ? " (TLS)" : "", failure);
    else
        log_msg(NT_LOG_INFO, "redis_connect", "redis %s%s: connected", s->endpoint,
                s->url.is_tls ? " (TLS)" : "");
}

/* AUTH's error reply as a sentence naming the cause. Redis answers WRONGPASS
 * both for an unknown user and for a wrong password (and for a disabled user),
 * so with a user name the two cannot be told apart from outside. */
static void store_auth_error(const store *s, const char *reply, char *msg, size_t n)
{
    if (strncmp(reply, "WRONGPASS", 9) == 0 && s->url.username)
        snprintf(msg, n,
                 "authentication failed for user '%.40s': wrong password or unknown user "
                 "(%.80s)",
                 s->url.username, reply);
    else if (strncmp(reply, "WRONGPASS", 9) == 0)
        snprintf(msg, n, "authentication failed: wrong password (%.80s)", reply);
    else if (strstr(reply, "without any password configured"))
        snprintf(msg, n,
                 "authentication failed: a password is configured but the server has none for "
                 "the default user");
    else
        snprintf(msg, n, "authentication failed: %.120s", reply);
}

/* A handshake command's error reply as a sentence. */
static void store_handshake_error(const char *what, const char *reply, char *msg, size_t n)
{
    if (strncmp(reply, "NOAUTH", 6) == 0)
        snprintf(msg, n, "the server requires a password and none is configured (%.80s)", reply);
    else if (strncmp(reply, "NOPERM", 6) == 0)
        snprintf(msg, n, "the Redis user may not run %s (%.100s)", what, reply);
    else
        snprintf(msg, n, "%s failed: %.120s", what, reply);
}

/* Queues AUTH; the formatted command holds the password, so it is wiped. */
static int store_queue_auth(store *s)
{
    const char *argv[3] = {"AUTH", s->url.username ? s->url.username : s->password, s->password};
    size_t lens[3] = {4, strlen(argv[1]), strlen(s->password)};
    size_t len;
    char *cmd = resp_format(s->url.username ? 3 : 2, argv, lens, &len);
    if (!cmd) return -1;
    int rc = conn_queue(s, cmd, len);
    explicit_bzero(cmd, len);
    free(cmd);
    return rc;
}

/* The handshake of a fresh connection: AUTH, SELECT, SCRIPT LOAD, pipelined.
 * NT_OK, or an error with a sentence in err (which store_connect turns into
 * the store's NT_ERR_STORE and its backoff). The first failing reply names
 * the failure; every reply is still read, so the connection stays in step. */
static nt_status store_handshake(store *s, int timeout_ms, nt_err *err)
{
    enum { OP_AUTH, OP_SELECT, OP_LOAD };
    int ops[2 + SCRIPT_COUNT], nops = 0, oom = 0;
    if (s->password) {
        oom |= store_queue_auth(s);
        ops[nops++] = OP_AUTH;
    }
    if (s->url.db != 0) {
        oom |= conn_queuef(s, "SELECT %d", s->url.db);
        ops[nops++] = OP_SELECT;
    }
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        oom |= conn_queuef(s, "SCRIPT LOAD %s", script_text[i]);
        ops[nops++] = OP_LOAD;
    }
    if (oom) return nt_fail(err, NT_ERR_NOMEM, "out of memory");
    int64_t t0 = mono_us();
    size_t queued = s->wlen;
    nt_status st = conn_flush(s, timeout_ms, err);
    explicit_bzero(s->wbuf, queued); /* the AUTH command */
    if (st != NT_OK) return st;
    int script = 0;
    for (int i = 0; i < nops; i++) {
        redisReply *r = NULL;
        nt_err io;
        nt_status rc = conn_reply(s, &r, timeout_ms, &io);
        if (rc != NT_OK) return st == NT_OK ? nt_fail(err, rc, "%s", io.msg) : st;
        if (st == NT_OK && reply_is_error(r)) {
            st = NT_ERR_STORE;
            if (ops[i] == OP_AUTH)
                store_auth_error(s, r->str, err->msg, sizeof err->msg);
            else
                store_handshake_error(ops[i] == OP_SELECT ? "SELECT" : "SCRIPT LOAD", r->str,
                                      err->msg, sizeof err->msg);
        } else if (st == NT_OK && ops[i] == OP_LOAD) {
            if (r->type != REDIS_REPLY_STRING || r->len != 40) {
                st = nt_fail(err, NT_ERR_STORE, "SCRIPT LOAD returned an unexpected reply");
            } else {
                memcpy(s->sha[script], r->str, 40);
                s->sha[script][40] = '\0';
            }
        }
        if (ops[i] == OP_LOAD) script++;
        freeReplyObject(r);
    }
    s->counters.round_trips++;
    s->counters.latency_us_total += (unsigned long long)(mono_us() - t0);
    return st;
}

static nt_status store_connect(store *s, nt_err *err)
{
    if (s->io) return NT_OK;
    int64_t start = mono_us();
    int64_t now_ms = start / 1000;
    if (now_ms < s->retry_at_ms)
        return store_failf(s, err, "%s (next connection attempt in %lld ms)", s->last_error,
                           (long long)(s->retry_at_ms - now_ms));

    char msg[NT_ERR_MSG_MAX];
    nt_err io;
    nt_status st = s->url.is_unix
                       ? netio_connect_unix(&s->io, s->url.path, s->connect_timeout_ms, &io)
                       : netio_connect_tcp(&s->io, s->url.host, s->url.port, s->tls,
                                           s->connect_timeout_ms, &io);
    if (st != NT_OK) {
        snprintf(msg, sizeof msg, "%s", io.msg);
        goto fail;
    }
    s->reader = redisReaderCreate();
    if (!s->reader) {
        snprintf(msg, sizeof msg, "cannot allocate a connection");
        goto fail;
    }
    /* The handshake gets what is left of the connect timeout (at least 50 ms). */
    int remaining = s->connect_timeout_ms - (int)((mono_us() - start) / 1000);
    if (remaining < 50) remaining = 50;
    nt_err hs;
    if (store_handshake(s, remaining, &hs) != NT_OK) {
        snprintf(msg, sizeof msg, "%s", hs.msg);
        goto fail;
    }
    if (s->ever_connected) s->counters.reconnects++;
    s->ever_connected = 1;
    s->backoff_ms = 0;
    s->retry_at_ms = 0;
    store_log_connect(s, NULL);
    return NT_OK;

fail:
    conn_drop(s);
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : STORE_BACKOFF_FIRST_MS;
    if (s->backoff_ms > STORE_BACKOFF_MAX_MS) s->backoff_ms = STORE_BACKOFF_MAX_MS;
    s->retry_at_ms = mono_us() / 1000 + s->backoff_ms;
    snprintf(s->last_error, sizeof s->last_error, "%s", msg);
    store_log_connect(s, msg);
    return store_failf(s, err, "%s", msg);
}

/* ---- commands and batches ------------------------------------------------------ */

#define CMD_ARGS 40

/* One command's arguments. Numbers and formatted keys live in the command. */
typedef struct cmd {
    int argc, oom, nowned;
    const char *argv[CMD_ARGS];
    size_t len[CMD_ARGS];
    char *owned[CMD_ARGS];
    char num[CMD_ARGS][24];
} cmd;

static void cmd_arg(cmd *c, const char *p, size_t len)
{
    if (c->argc >= CMD_ARGS) {
        c->oom = 1;
        return;
    }
    c->argv[c->argc] = p;
    c->len[c->argc] = len;
    c->argc++;
}

static void cmd_str(cmd *c, const char *s)
{
    cmd_arg(c, s, strlen(s));
}

static void cmd_ll(cmd *c, long long v)
{
    if (c->argc >= CMD_ARGS) {
        c->oom = 1;
        return;
    }
    int len = snprintf(c->num[c->argc], sizeof c->num[0], "%lld", v);
    cmd_arg(c, c->num[c->argc], (size_t)len);
}

static void cmd_fmt(cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cmd_fmt(cmd *c, const char *fmt, ...)
{
    char *p = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (len < 0 || c->nowned >= CMD_ARGS) {
        if (len >= 0) free(p);
        c->oom = 1;
        return;
    }
    c->owned[c->nowned++] = p;
    cmd_arg(c, p, (size_t)len);
}

static void cmd_reset(cmd *c)
{
    for (int i = 0; i < c->nowned; i++)
        free(c->owned[i]);
    c->argc = c->oom = c->nowned = 0;
}

/* Formatted RESP commands, kept so that NOSCRIPT ones can be resent. */
typedef struct batch {
    char **buf;
    size_t *len;
    size_t n, cap;
    int last_is_wait; /* the last command is a WAIT (see store_exec) */
} batch;

static void batch_clear(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->buf[i]);
    free(b->buf);
    free(b->len);
    memset(b, 0, sizeof *b);
}

static nt_status batch_argv(batch *b, int argc, const char **argv, const size_t *lens, nt_err *err)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        char **nb = realloc(b->buf, cap * sizeof *nb);
        if (!nb) return store_nomem(err);
        b->buf = nb;
        size_t *nl = realloc(b->len, cap * sizeof *nl);
        if (!nl) return store_nomem(err);
        b->len = nl;
        b->cap = cap;
    }
    size_t len;
    char *out = resp_format(argc, argv, lens, &len);
    if (!out) return store_nomem(err);
    b->buf[b->n] = out;
    b->len[b->n] = len;
    b->n++;
    return NT_OK;
}

/* Adds c to b and resets c for reuse. */
static nt_status batch_cmd(batch *b, cmd *c, nt_err *err)
{
    nt_status st = c->oom ? store_nomem(err) : batch_argv(b, c->argc, c->argv, c->len, err);
    cmd_reset(c);
    return st;
}

static void replies_free(redisReply **rep, size_t n)
{
    if (!rep) return;
    for (size_t i = 0; i < n; i++) {
        if (rep[i]) freeReplyObject(rep[i]);
        rep[i] = NULL;
    }
}

/* Writes the commands named by which[0..k) (all when which is NULL) and reads
 * their replies into rep[]. One round trip. */
static nt_status store_roundtrip(store *s, const batch *b, const size_t *which, size_t k,
                                 redisReply **rep, nt_err *err)
{
    for (size_t j = 0; j < k; j++) {
        size_t i = which ? which[j] : j;
        if (conn_queue(s, b->buf[i], b->len[i]) != 0) {
            s->wlen = 0;
            return store_nomem(err);
        }
    }
    /* WAIT holds its reply back for up to its own timeout. */
    int timeout_ms = s->command_timeout_ms + (b->last_is_wait ? s->wait_timeout_ms : 0);
    nt_err io;
    int64_t t0 = mono_us();
    if (conn_flush(s, timeout_ms, &io) != NT_OK) return store_io_fail(s, &io, err);
    for (size_t j = 0; j < k; j++) {
        size_t i = which ? which[j] : j;
        if (conn_reply(s, &rep[i], timeout_ms, &io) != NT_OK) {
            replies_free(rep, b->n);
            return store_io_fail(s, &io, err);
        }
    }
    s->counters.round_trips++;
    s->counters.latency_us_total += (unsigned long long)(mono_us() - t0);
    return NT_OK;
}

static int reply_is_noscript(const redisReply *r)
{
    return reply_is_error(r) && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Reloads every script on the current connection (one round trip). */
static nt_status store_reload_scripts(store *s, nt_err *err)
{
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        if (conn_queuef(s, "SCRIPT LOAD %s", script_text[i]) != 0) {
            s->wlen = 0;
            return store_nomem(err);
        }
    }
    nt_err io;
    int64_t t0 = mono_us();
    if (conn_flush(s, s->command_timeout_ms, &io) != NT_OK) return store_io_fail(s, &io, err);
    int bad = -1;
    char what[128] = "";
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        redisReply *r = NULL;
        if (conn_reply(s, &r, s->command_timeout_ms, &io) != NT_OK)
            return store_io_fail(s, &io, err);
        if (bad < 0 &&
            (r->type != REDIS_REPLY_STRING || r->len != 40 || memcmp(r->str, s->sha[i], 40) != 0)) {
            bad = i;
            snprintf(what, sizeof what, "%s", reply_is_error(r) ? r->str : "unexpected reply");
        }
        freeReplyObject(r);
    }
    s->counters.round_trips++;
    s->counters.latency_us_total += (unsigned long long)(mono_us() - t0);
    s->counters.noscript_reloads++;
    if (bad >= 0) return store_failf(s, err, "SCRIPT LOAD failed: %s", what);
    return NT_OK;
}

/* Runs batch b: connects if needed, one round trip, and when some replies are
 * NOSCRIPT reloads the scripts and resends just those commands (and a final
 * WAIT, so that it counts the replicas of the resent writes too). rep[0..b->n)
 * receives the replies (error replies included; the caller judges them). */
static nt_status store_exec(store *s, const batch *b, redisReply **rep, nt_err *err)
{
    memset(rep, 0, b->n * sizeof *rep);
    nt_status st = store_connect(s, err);
    if (st != NT_OK) return st;
    st = store_roundtrip(s, b, NULL, b->n, rep, err);
    if (st != NT_OK) return st;

    size_t k = 0;
    for (size_t i = 0; i < b->n; i++)
        k += reply_is_noscript(rep[i]);
    if (k == 0) return NT_OK;
    size_t *which = malloc((k + 1) * sizeof *which);
    if (!which) {
        replies_free(rep, b->n);
        return store_nomem(err);
    }
    k = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (reply_is_noscript(rep[i]) || (b->last_is_wait && i == b->n - 1)) {
            if (rep[i]) freeReplyObject(rep[i]);
            rep[i] = NULL;
            which[k++] = i;
        }
    }
    st = store_reload_scripts(s, err);
    if (st == NT_OK) st = store_roundtrip(s, b, which, k, rep, err);
    free(which);
    if (st != NT_OK) replies_free(rep, b->n);
    return st;
}

/* Runs a single command. *out is the reply (an error reply becomes NT_ERR_STORE
 * with `what` in the message). */
static nt_status store_run1(store *s, cmd *c, const char *what, redisReply **out, nt_err *err)
{
    batch b = {0};
    *out = NULL;
    nt_status st = batch_cmd(&b, c, err);
    if (st == NT_OK) st = store_exec(s, &b, out, err);
    batch_clear(&b);
    if (st == NT_OK && reply_is_error(*out)) {
        st = store_failf(s, err, "%s: %s", what, (*out)->str);
        freeReplyObject(*out);
        *out = NULL;
    }
    return st;
}

/* NT_OK once the scripts' SHAs are known: they are loaded by the handshake,
 * so connecting once gives them. Otherwise the store's NT_ERR_STORE. */
static nt_status store_ensure_sha(store *s, nt_err *err)
{
    return store_connect(s, err);
}

/* ---- open / free ------------------------------------------------------------------ */

/* NEWTERMSD_REDIS_TLS_INSECURE is said loudly, once per process. */
static void store_warn_insecure(void)
{
    log_msg(NT_LOG_WARN, "redis_tls_insecure",
            "Redis TLS certificate verification is OFF (NEWTERMSD_REDIS_TLS_INSECURE): anyone "
            "on the network path can read and change what newtermsd stores; use this only in "
            "tests");
}

static int tls_config_set(const netio_tls_config *t)
{
    return t->ca_file || t->cert_file || t->key_file || t->server_name || t->insecure;
}

nt_status store_open(store **out, const store_config *cfg, nt_err *err)
{
    *out = NULL;
    if (!cfg->url) return nt_fail(err, NT_ERR_INVALID, "no Redis URL");
    if (cfg->connect_timeout_ms <= 0 || cfg->command_timeout_ms <= 0 ||
        cfg->alert_retention_ms <= 0 || cfg->alert_cap == 0)
        return nt_fail(err, NT_ERR_INVALID,
                       "store timeouts, alert retention and alert cap must be positive");
    if (cfg->wait_replicas < 0 || (cfg->wait_replicas > 0 && cfg->wait_timeout_ms <= 0))
        return nt_fail(err, NT_ERR_INVALID,
                       "WAIT needs a replica count >= 0 and a positive timeout");
    store *s = calloc(1, sizeof *s);
    if (!s) return store_nomem(err);
    nt_status st = redis_url_parse(cfg->url, &s->url, err);
    if (st != NT_OK) {
        free(s);
        return st;
    }
    const char *pw = cfg->password && *cfg->password ? cfg->password : s->url.password;
    if (pw) {
        s->password = strdup(pw);
        if (!s->password) {
            store_free(s);
            return store_nomem(err);
        }
    }
    if (s->url.username && !s->password) {
        store_free(s);
        return nt_fail(err, NT_ERR_INVALID,
                       "redis URL names a user but no password is set "
                       "(NEWTERMSD_REDIS_PASSWORD or NEWTERMSD_REDIS_PASSWORD_FILE)");
    }
    if (!s->url.is_tls && tls_config_set(&cfg->tls)) {
        store_free(s);
        return nt_fail(err, NT_ERR_INVALID,
                       "Redis TLS options are set but the URL is not rediss://; use "
                       "rediss://host:port/db for TLS");
    }
    if (s->url.is_tls) {
        st = netio_tls_new(&s->tls, &cfg->tls, err);
        if (st != NT_OK) {
            store_free(s);
            return st;
        }
        if (cfg->tls.insecure) {
            static pthread_once_t once = PTHREAD_ONCE_INIT;
            pthread_once(&once, store_warn_insecure);
        }
    }
    s->connect_timeout_ms = cfg->connect_timeout_ms;
    s->command_timeout_ms = cfg->command_timeout_ms;
    s->retention_ms = cfg->alert_retention_ms;
    s->alert_cap = cfg->alert_cap;
    s->reject_cap = cfg->reject_cap;
    s->wait_replicas = cfg->wait_replicas;
    s->wait_timeout_ms = cfg->wait_timeout_ms;
    if (s->url.is_unix)
        snprintf(s->endpoint, sizeof s->endpoint, "%s/%d", s->url.path, s->url.db);
    else if (strchr(s->url.host, ':'))
        snprintf(s->endpoint, sizeof s->endpoint, "[%s]:%d/%d", s->url.host, s->url.port,
                 s->url.db);
    else
        snprintf(s->endpoint, sizeof s->endpoint, "%s:%d/%d", s->url.host, s->url.port, s->url.db);
    *out = s;
    return NT_OK;
}

void store_free(store *s)
{
    if (!s) return;
    conn_drop(s);
    netio_tls_free(s->tls);
    if (s->wbuf) explicit_bzero(s->wbuf, s->wcap); /* it held an AUTH command */
    free(s->wbuf);
    redis_url_clear(&s->url);
    if (s->password) explicit_bzero(s->password, strlen(s->password));
    free(s->password);
    free(s);
}

const char *store_endpoint(const store *s)
{
    return s->endpoint;
}

void store_get_counters(const store *s, store_counters *out)
{
    *out = s->counters;
}

nt_status store_ping(store *s, nt_err *err)
{
    cmd c = {0};
    cmd_str(&c, "PING");
    redisReply *r;
    nt_status st = store_run1(s, &c, "PING", &r, err);
    if (st != NT_OK) return st;
    int ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    freeReplyObject(r);
    return ok ? NT_OK : store_failf(s, err, "PING: unexpected reply");
}

/* ---- small helpers ----------------------------------------------------------------- */

static int id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > STORE_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static int nonempty(const char *s)
{
    return s && *s;
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* Parses a reply holding a decimal integer (string or integer reply). */
static int reply_ll(const redisReply *r, long long *out)
{
    if (!r) return -1;
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20) return -1;
    char buf[24];
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end) {
        /* Scores come back as doubles ("1.5e+12" never happens for ms, but be safe). */
        double d = strtod(buf, &end);
        if (*end || d != d) return -1;
        v = (long long)d;
    }
    *out = v;
    return 0;
}

static json_t *json_time_or_null(int has, nt_time_ms t)
{
    if (!has) return json_null();
    char buf[NT_TIME_BUF];
    return json_string(nt_time_format(t, buf));
}

/* ---- observe ------------------------------------------------------------------------- */

static nt_status obs_check(const store_obs *o, size_t i, nt_err *err)
{
    if (!nonempty(o->rule_id) || !nonempty(o->term_hash))
        return nt_fail(err, NT_ERR_INVALID, "observation %zu has no rule id or term hash", i);
    if (o->mode != STORE_OBS_LIVE && o->mode != STORE_OBS_LEARN && o->mode != STORE_OBS_BACKFILL)
        return nt_fail(err, NT_ERR_INVALID, "observation %zu has an unknown mode", i);
    if (o->kind != STORE_KIND_NEW_TERMS && o->kind != STORE_KIND_QUERY &&
        o->kind != STORE_KIND_THRESHOLD)
        return nt_fail(err, NT_ERR_INVALID, "observation %zu has an unknown rule kind", i);
    if (o->kind != STORE_KIND_NEW_TERMS && o->mode == STORE_OBS_BACKFILL)
        return nt_fail(err, NT_ERR_INVALID, "observation %zu: only new_terms rules backfill", i);
    if (o->mode != STORE_OBS_BACKFILL && o->ttl_ms <= 0)
        return nt_fail(err, NT_ERR_INVALID, "observation %zu has a non-positive history window", i);
    if (o->kind == STORE_KIND_THRESHOLD && o->thr_value < 1)
        return nt_fail(err, NT_ERR_INVALID, "observation %zu has a threshold below 1", i);
    if (o->supp_ms > 0 && !nonempty(o->supp_hash))
        return nt_fail(err, NT_ERR_INVALID, "observation %zu has no suppression group", i);
    if (o->kind == STORE_KIND_THRESHOLD || o->mode == STORE_OBS_LIVE) {
        if (!id_valid(o->alert_id))
            return nt_fail(err, NT_ERR_INVALID, "observation %zu has an invalid alert id", i);
    }
    if (o->defer_doc && (o->kind == STORE_KIND_QUERY || o->mode != STORE_OBS_LIVE ||
                         o->supp_ms > 0 || o->alert_json))
        return nt_fail(err, NT_ERR_INVALID,
                       "observation %zu defers its document but is not a live, unsuppressed "
                       "new_terms or threshold sighting without one",
                       i);
    if (o->mode == STORE_OBS_LIVE && !o->alert_json && !o->defer_doc)
        return nt_fail(err, NT_ERR_INVALID, "observation %zu has no alert document", i);
    return NT_OK;
}

/* Observations per OBSERVE_LUA call: bounds one call's argument count (4 +
 * at most 9 per profile and 9 per observation) and the time Redis spends in
 * one script. */
#define STORE_OBS_CHUNK 256
#define PROFILE_ARGS 9
#define OBS_ARGS_MAX 9
#define PROFILE_NUMS 6 /* numeric arguments per profile */
#define OBS_NUMS_MAX 2 /* per observation: its profile's number, the event time */

/* A growing argument vector over borrowed strings and its own numbers. */
typedef struct argvec {
    const char **argv;
    size_t *lens;
    char (*nums)[24];
    size_t k, m;
} argvec;

static void av_arg(argvec *v, const char *p, size_t len)
{
    v->argv[v->k] = p;
    v->lens[v->k] = len;
    v->k++;
}

static void av_str(argvec *v, const char *p)
{
    av_arg(v, p, strlen(p));
}

static void av_num(argvec *v, long long x)
{
    size_t len = fmt_ll(v->nums[v->m], x);
    av_arg(v, v->nums[v->m], len);
    v->m++;
}

/* Whether two observations share what OBSERVE_LUA takes once per call. */
static int same_profile(const store_obs *a, const store_obs *b)
{
    return a->kind == b->kind && a->mode == b->mode && a->seen_ms == b->seen_ms &&
           a->ttl_ms == b->ttl_ms && a->created_ms == b->created_ms &&
           a->thr_value == b->thr_value && a->card_value == b->card_value &&
           (a->supp_ms > 0 ? a->supp_ms : 0) == (b->supp_ms > 0 ? b->supp_ms : 0) &&
           (a->rule_id == b->rule_id || strcmp(a->rule_id, b->rule_id) == 0);
}

/* prof[i] = the 0-based profile of obs[i]; first[p] = the first observation
 * of profile p. Returns the number of profiles. A delivery's observations
 * come from a few rules, so the last match is tried first. */
static size_t observe_profiles(const store_obs *obs, size_t n, size_t *prof, size_t *first)
{
    size_t np = 0, last = 0;
    for (size_t i = 0; i < n; i++) {
        size_t p = np;
        if (np && same_profile(&obs[first[last]], &obs[i])) {
            p = last;
        } else {
            for (size_t q = 0; q < np; q++) {
                if (same_profile(&obs[first[q]], &obs[i])) {
                    p = q;
                    break;
                }
            }
        }
        if (p == np) first[np++] = i;
        prof[i] = last = p;
    }
    return np;
}

/* The EVALSHA of OBSERVE_LUA for obs[0..n), added to b (the layout: see
 * OBSERVE_LUA). */
static nt_status observe_chunk(store *s, batch *b, const store_obs *obs, size_t n, nt_err *err)
{
    static const char kinds[] = {'n', 'q', 't'};
    static const char modes[] = {'L', 'R', 'B'};
    argvec v = {0};
    size_t max_args = 7 + (PROFILE_ARGS + OBS_ARGS_MAX) * n;
    v.argv = malloc(max_args * sizeof *v.argv);
    v.lens = malloc(max_args * sizeof *v.lens);
    v.nums = malloc((4 + (PROFILE_NUMS + OBS_NUMS_MAX) * n) * sizeof *v.nums);
    size_t *prof = malloc(2 * n * sizeof *prof);
    nt_status st;
    if (!v.argv || !v.lens || !v.nums || !prof) {
        st = store_nomem(err);
        goto out;
    }
    size_t *first = prof + n;
    size_t np = observe_profiles(obs, n, prof, first);
    av_str(&v, "EVALSHA");
    av_str(&v, s->sha[SCRIPT_OBSERVE]);
    av_str(&v, "0");
    av_num(&v, s->retention_ms);
    av_num(&v, (long long)s->alert_cap);
    av_num(&v, (long long)n);
    av_num(&v, (long long)np);
    for (size_t p = 0; p < np; p++) {
        const store_obs *o = &obs[first[p]];
        av_str(&v, o->rule_id);
        av_arg(&v, &kinds[o->kind], 1);
        av_arg(&v, &modes[o->mode], 1);
        av_num(&v, o->seen_ms);
        av_num(&v, o->ttl_ms);
        av_num(&v, o->created_ms);
        av_num(&v, o->thr_value);
        av_num(&v, o->card_value);
        av_num(&v, o->supp_ms > 0 ? o->supp_ms : 0);
    }
    for (size_t i = 0; i < n; i++) {
        const store_obs *o = &obs[i];
        long long num = (long long)prof[i] + 1;
        av_num(&v, o->defer_doc ? -num : num);
        av_str(&v, o->term_hash);
        int alert_fields = !o->defer_doc;
        if (o->kind == STORE_KIND_THRESHOLD) {
            av_str(&v, o->alert_id ? o->alert_id : "");
            av_num(&v, o->event_time >= 0 ? o->event_time : o->seen_ms);
            av_str(&v, or_empty(o->card));
        } else if (o->kind == STORE_KIND_NEW_TERMS) {
            alert_fields = alert_fields && o->mode == STORE_OBS_LIVE;
        }
        if (!alert_fields) continue;
        if (o->kind != STORE_KIND_THRESHOLD) av_str(&v, o->alert_id ? o->alert_id : "");
        av_str(&v, o->mode == STORE_OBS_LIVE && o->alert_json ? o->alert_json : "");
        av_str(&v, or_empty(o->account));
        av_str(&v, or_empty(o->user));
        if (o->supp_ms > 0) av_str(&v, o->supp_hash);
    }
    st = batch_argv(b, (int)v.k, v.argv, v.lens, err);
out:
    free(v.argv);
    free(v.lens);
    free(v.nums);
    free(prof);
    return st;
}

/* Reads one observation's answer (an element of the script's reply: its code,
 * or {code, count, cardinality, first, last, owner}) into o. -1 on another
 * shape. */
static int observe_reply(const redisReply *e, store_obs *o)
{
    long long v[5] = {0};
    const redisReply *owner = NULL;
    if (e->type == REDIS_REPLY_INTEGER) {
        v[0] = e->integer;
    } else {
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 6) return -1;
        for (int i = 0; i < 5; i++)
            if (reply_ll(e->element[i], &v[i]) != 0) return -1;
        owner = e->element[5];
        if (owner->type != REDIS_REPLY_STRING) return -1;
    }
    if (v[0] < 0 || v[0] > 6) return -1;
    o->is_new = v[0] >= 1 && v[0] <= 3;
    o->alert_written = v[0] == 1;
    o->suppressed = v[0] == 5;
    o->needs_doc = v[0] == 6;
    if (o->needs_doc && !o->defer_doc) return -1;
    if (o->suppressed) {
        if (!owner || owner->len == 0 || owner->len >= sizeof o->supp_into) return -1;
        memcpy(o->supp_into, owner->str, owner->len);
        o->supp_into[owner->len] = '\0';
    }
    o->thr_count = v[1];
    o->thr_card = v[2];
    o->thr_first = v[3];
    o->thr_last = v[4];
    return 0;
}

static void observe_reset(store_obs *obs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        obs[i].is_new = obs[i].alert_written = obs[i].suppressed = obs[i].needs_doc = 0;
        obs[i].supp_into[0] = '\0';
        obs[i].thr_count = obs[i].thr_card = 0;
        obs[i].thr_first = obs[i].thr_last = 0;
    }
}

nt_status store_observe(store *s, store_obs *obs, size_t n, nt_err *err)
{
    observe_reset(obs, n);
    for (size_t i = 0; i < n; i++) {
        nt_status st = obs_check(&obs[i], i, err);
        if (st != NT_OK) return st;
    }
    if (n == 0) return NT_OK;
    nt_status ready = store_ensure_sha(s, err);
    if (ready != NT_OK) return ready;

    batch b = {0};
    cmd c = {0};
    redisReply **rep = NULL;
    nt_status st = NT_OK;
    size_t chunks = 0;
    for (size_t i = 0; i < n && st == NT_OK; i += STORE_OBS_CHUNK, chunks++)
        st = observe_chunk(s, &b, obs + i, n - i < STORE_OBS_CHUNK ? n - i : STORE_OBS_CHUNK, err);
    if (st == NT_OK && s->wait_replicas > 0) {
        /* In the same round trip: the scripts' writes reach the replicas or the
         * call fails, before anything is acknowledged. */
        cmd_str(&c, "WAIT");
        cmd_ll(&c, s->wait_replicas);
        cmd_ll(&c, s->wait_timeout_ms);
        st = batch_cmd(&b, &c, err);
        b.last_is_wait = 1;
    }
    if (st == NT_OK) {
        rep = calloc(b.n, sizeof *rep);
        if (!rep) st = store_nomem(err);
    }
    if (st == NT_OK) st = store_exec(s, &b, rep, err);
    for (size_t ch = 0; ch < chunks && st == NT_OK; ch++) {
        size_t first = ch * STORE_OBS_CHUNK;
        size_t k = n - first < STORE_OBS_CHUNK ? n - first : STORE_OBS_CHUNK;
        const redisReply *r = rep[ch];
        if (reply_is_error(r)) {
            st = store_failf(s, err, "observe script failed: %s", r->str);
            break;
        }
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != k) {
            st = store_failf(s, err, "observe script returned an unexpected reply");
            break;
        }
        for (size_t i = 0; i < k && st == NT_OK; i++)
            if (observe_reply(r->element[i], &obs[first + i]) != 0)
                st = store_failf(s, err, "observe script returned an unexpected reply");
    }
    if (st == NT_OK && b.last_is_wait) {
        const redisReply *w = rep[chunks];
        if (reply_is_error(w))
            st = store_failf(s, err, "WAIT failed: %s", w->str);
        else if (w->type != REDIS_REPLY_INTEGER)
            st = store_failf(s, err, "WAIT returned an unexpected reply");
        else if (w->integer < s->wait_replicas)
            st = store_failf(s, err,
                             "only %lld of %d replicas acknowledged the writes within %d ms "
                             "(WAIT); the delivery is not acknowledged",
                             w->integer, s->wait_replicas, s->wait_timeout_ms);
    }
    if (st != NT_OK) observe_reset(obs, n); /* all or nothing for the caller: no partial outcomes */
    if (rep) replies_free(rep, b.n);
    free(rep);
    batch_clear(&b);
    return st;
}

/* ---- alert documents ------------------------------------------------------------------ */

/* The one list of triage statuses (api.c validates through these functions). */
int store_alert_status_valid(const char *status)
{
    static const char *const statuses[] = {"open", "acknowledged", "closed"};
    if (!status) return 0;
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (strcmp(status, statuses[i]) == 0) return 1;
    return 0;
}

int store_alert_reason_valid(const char *reason)
{
    static const char *const reasons[] = {"false_positive",  "duplicate",         "true_positive",
                                          "benign_positive", "automated_closure", "other"};
    if (!reason) return 0;
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (strcmp(reason, reasons[i]) == 0) return 1;
    return 0;
}

static int field_is(const redisReply *k, const char *name)
{
    return k->type == REDIS_REPLY_STRING && k->len == strlen(name) &&
           memcmp(k->str, name, k->len) == 0;
}

void store_alert_apply_state(json_t *doc, const store_alert_state *st)
{
    char buf[NT_TIME_BUF];
    json_t *thr = json_object_get(doc, "threshold_result");
    if (st->has_thr && json_is_object(thr)) {
        json_object_set_new(thr, "count", json_integer((json_int_t)st->thr_count));
        json_t *card = json_array_get(json_object_get(thr, "cardinality"), 0);
        if (json_is_object(card))
            json_object_set_new(card, "value", json_integer((json_int_t)st->thr_card));
        json_object_set_new(thr, "from", json_string(nt_time_format(st->thr_from, buf)));
        json_object_set_new(thr, "first_event_time",
                            json_string(nt_time_format(st->thr_first, buf)));
        json_object_set_new(thr, "last_event_time", json_string(nt_time_format(st->thr_last, buf)));
    }
    json_t *supp = json_object_get(doc, "suppression");
    if (st->has_supp && json_is_object(supp)) {
        json_object_set_new(supp, "start", json_string(nt_time_format(st->supp_start, buf)));
        json_object_set_new(supp, "end", json_string(nt_time_format(st->supp_end, buf)));
        json_object_set_new(supp, "docs_count", json_integer((json_int_t)st->supp_docs));
    }
}

/* Builds the full document from an HGETALL reply. NT_ERR_NOTFOUND for an empty
 * hash. */
static nt_status alert_document(store *s, const char *id, const redisReply *h, json_t **out,
                                nt_err *err)
{
    *out = NULL;
    if (!h || h->type != REDIS_REPLY_ARRAY || h->elements == 0)
        return nt_fail(err, NT_ERR_NOTFOUND, "alert %s not found", id);
    const redisReply *doc = NULL, *status = NULL, *reason = NULL;
    long long created = 0, updated = 0, since = 0, window = 0;
    int has_since = 0, has_window = 0;
    store_alert_state ast = {0};
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i], *v = h->element[i + 1];
        if (v->type != REDIS_REPLY_STRING) continue;
        if (field_is(k, "doc"))
            doc = v;
        else if (field_is(k, "status"))
            status = v;
        else if (field_is(k, "status_reason"))
            reason = v;
        else if (field_is(k, "created_ms"))
            reply_ll(v, &created);
        else if (field_is(k, "updated_ms"))
            reply_ll(v, &updated);
        else if (field_is(k, "history_since_ms"))
            has_since = reply_ll(v, &since) == 0;
        else if (field_is(k, "window_ms"))
            has_window = reply_ll(v, &window) == 0;
        else if (field_is(k, "thr_count"))
            ast.has_thr = reply_ll(v, &ast.thr_count) == 0;
        else if (field_is(k, "thr_card"))
            reply_ll(v, &ast.thr_card);
        else if (field_is(k, "thr_first_ms"))
            reply_ll(v, &ast.thr_first);
        else if (field_is(k, "thr_last_ms"))
            reply_ll(v, &ast.thr_last);
        else if (field_is(k, "thr_from_ms"))
            reply_ll(v, &ast.thr_from);
        else if (field_is(k, "supp_docs_count"))
            ast.has_supp = reply_ll(v, &ast.supp_docs) == 0;
        else if (field_is(k, "supp_start_ms"))
            reply_ll(v, &ast.supp_start);
        else if (field_is(k, "supp_end_ms"))
            reply_ll(v, &ast.supp_end);
    }
    if (!doc || !status) return store_failf(s, err, "alert %s is stored without a document", id);
    json_error_t jerr;
    json_t *d = json_loadb(doc->str, doc->len, 0, &jerr);
    if (!d || !json_is_object(d)) {
        json_decref(d);
        return store_failf(s, err, "alert %s: stored document is not a JSON object", id);
    }
    store_alert_apply_state(d, &ast);
    const char *hw = json_string_value(json_object_get(d, "history_window"));
    if (!has_window && hw) {
        nt_time_ms w;
        if (nt_duration_parse(hw, strlen(hw), &w, NULL) == NT_OK) {
            window = w;
            has_window = 1;
        }
    }
    int bad = 0;
    /* Only new_terms alerts stand on a history; query and threshold alerts
     * carry no history block. */
    if (hw) {
        long long depth_ms = has_since && created > since ? created - since : 0;
        json_t *history = json_pack("{s:o, s:I, s:b}", "since", json_time_or_null(has_since, since),
                                    "depth_seconds", (json_int_t)(depth_ms / 1000), "complete",
                                    has_since && has_window && window > 0 && depth_ms >= window);
        bad |= !history;
        bad |= json_object_set_new(d, "history", history);
    }
    bad |= json_object_set_new(d, "id", json_string(id));
    bad |= json_object_set_new(d, "status", json_stringn(status->str, status->len));
    bad |= json_object_set_new(d, "status_reason",
                               reason ? json_stringn(reason->str, reason->len) : json_null());
    bad |= json_object_set_new(d, "created_at", json_time_or_null(1, created));
    bad |= json_object_set_new(d, "updated_at", json_time_or_null(1, updated));
    if (bad) {
        json_decref(d);
        return store_nomem(err);
    }
    *out = d;
    return NT_OK;
}

nt_status store_alert_get(store *s, const char *id, json_t **out, nt_err *err)
{
    *out = NULL;
    if (!id_valid(id)) return nt_fail(err, NT_ERR_INVALID, "alert id is not valid");
    cmd c = {0};
    cmd_str(&c, "HGETALL");
    cmd_fmt(&c, "nt:alert:%s", id);
    redisReply *r;
    nt_status st = store_run1(s, &c, "HGETALL", &r, err);
    if (st != NT_OK) return st;
    st = alert_document(s, id, r, out, err);
    freeReplyObject(r);
    return st;
}

/* The status and reason of a triage change, checked alike for one alert and
 * for a batch. */
static nt_status status_args_check(const char *status, const char *reason, nt_err *err)
{
    if (!store_alert_status_valid(status))
        return nt_fail(err, NT_ERR_INVALID, "status must be open, acknowledged or closed");
    if (reason && !store_alert_reason_valid(reason))
        return nt_fail(err, NT_ERR_INVALID,
                       "reason must be one of false_positive, duplicate, true_positive, "
                       "benign_positive, automated_closure, other");
    return NT_OK;
}

nt_status store_alert_set_status(store *s, const char *id, const char *status, const char *reason,
                                 nt_time_ms now, json_t **out, nt_err *err)
{
    if (out) *out = NULL;
    if (!id_valid(id)) return nt_fail(err, NT_ERR_INVALID, "alert id is not valid");
    nt_status checked = status_args_check(status, reason, err);
    if (checked != NT_OK) return checked;
    nt_status ready = store_ensure_sha(s, err);
    if (ready != NT_OK) return ready;
    cmd c = {0};
    cmd_str(&c, "EVALSHA");
    cmd_str(&c, s->sha[SCRIPT_STATUS]);
    cmd_ll(&c, 1);
    cmd_fmt(&c, "nt:alert:%s", id);
    cmd_str(&c, id);
    cmd_str(&c, status);
    cmd_str(&c, or_empty(reason));
    cmd_ll(&c, now);
    cmd_ll(&c, s->retention_ms);
    redisReply *r;
    nt_status st = store_run1(s, &c, "status script failed", &r, err);
    if (st != NT_OK) return st;
    if (r->type == REDIS_REPLY_NIL) {
        st = nt_fail(err, NT_ERR_NOTFOUND, "alert %s not found", id);
    } else if (out) {
        st = alert_document(s, id, r, out, err);
    }
    freeReplyObject(r);
    return st;
}

nt_status store_alert_set_status_many(store *s, const char *const *ids, size_t n,
                                      const char *status, const char *reason, nt_time_ms now,
                                      json_t **missing, nt_err *err)
{
    *missing = NULL;
    if (n == 0 || n > STORE_BULK_MAX)
        return nt_fail(err, NT_ERR_INVALID, "between 1 and %d alert ids are allowed",
                       STORE_BULK_MAX);
    for (size_t i = 0; i < n; i++)
        if (!id_valid(ids[i])) return nt_fail(err, NT_ERR_INVALID, "alert id %zu is not valid", i);
    nt_status checked = status_args_check(status, reason, err);
    if (checked != NT_OK) return checked;
    nt_status ready = store_ensure_sha(s, err);
    if (ready != NT_OK) return ready;
    /* EVALSHA sha n key… status reason now retention id…: more arguments than
     * a `cmd` holds, so the argv is built here. */
    size_t argc = 7 + 2 * n;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *lens = calloc(argc, sizeof *lens);
    char **keys = calloc(n, sizeof *keys);
    char nums[3][24];
    batch b = {0};
    redisReply *r = NULL;
    nt_status st = argv && lens && keys ? NT_OK : store_nomem(err);
    for (size_t i = 0; st == NT_OK && i < n; i++)
        if (asprintf(&keys[i], "nt:alert:%s", ids[i]) < 0) {
            keys[i] = NULL;
            st = store_nomem(err);
        }
    if (st == NT_OK) {
        size_t k = 0;
        snprintf(nums[0], sizeof nums[0], "%zu", n);
        snprintf(nums[1], sizeof nums[1], "%lld", (long long)now);
        snprintf(nums[2], sizeof nums[2], "%lld", (long long)s->retention_ms);
        argv[k++] = "EVALSHA";
        argv[k++] = s->sha[SCRIPT_STATUS_MANY];
        argv[k++] = nums[0];
        for (size_t i = 0; i < n; i++)
            argv[k++] = keys[i];
        argv[k++] = status;
        argv[k++] = or_empty(reason);
        argv[k++] = nums[1];
        argv[k++] = nums[2];
        for (size_t i = 0; i < n; i++)
            argv[k++] = ids[i];
        for (size_t i = 0; i < argc; i++)
            lens[i] = strlen(argv[i]);
        st = batch_argv(&b, (int)argc, argv, lens, err);
    }
    if (st == NT_OK) st = store_exec(s, &b, &r, err);
    if (st == NT_OK && reply_is_error(r))
        st = store_failf(s, err, "bulk status script failed: %s", r->str);
    for (size_t i = 0; keys && i < n; i++)
        free(keys[i]);
    free(keys);
    free(argv);
    free(lens);
    batch_clear(&b);
    if (st != NT_OK) {
        if (r) freeReplyObject(r);
        return st;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        st = store_failf(s, err, "bulk status script returned an unexpected reply");
    } else if (r->element[0]->integer == 0) {
        const redisReply *m = r->element[1];
        json_t *arr = json_array();
        for (size_t i = 0; arr && m->type == REDIS_REPLY_ARRAY && i < m->elements; i++)
            if (m->element[i]->type == REDIS_REPLY_STRING &&
                json_array_append_new(arr, json_stringn(m->element[i]->str, m->element[i]->len)) !=
                    0) {
                json_decref(arr);
                arr = NULL;
            }
        if (!arr) {
            st = store_nomem(err);
        } else {
            st = nt_fail(err, NT_ERR_NOTFOUND, "%zu of the %zu alert ids name no alert",
                         json_array_size(arr), n);
            *missing = arr;
        }
    }
    freeReplyObject(r);
    return st;
}

/* ---- listing ------------------------------------------------------------------------ */

static char *cursor_encode(long long score, const char *id, size_t idlen)
{
    char raw[32 + STORE_ID_MAX];
    int n = snprintf(raw, sizeof raw, "%lld:%.*s", score, (int)idlen, id);
    if (n < 0 || (size_t)n >= sizeof raw) return NULL;
    size_t cap = b64url_encoded_len((size_t)n) + 1;
    char *out = malloc(cap);
    if (out &&
        b64url_encode((const unsigned char *)raw, (size_t)n, out, cap, NULL, NULL) != NT_OK) {
        free(out);
        out = NULL;
    }
    return out;
}

static nt_status cursor_decode(const char *cursor, long long *score, char id[STORE_ID_MAX + 1],
                               nt_err *err)
{
    char raw[40 + STORE_ID_MAX];
    size_t n;
    size_t clen = strlen(cursor);
    if (clen > 256 ||
        b64url_decode(cursor, clen, (unsigned char *)raw, sizeof raw - 1, &n, NULL) != NT_OK)
        return nt_fail(err, NT_ERR_INVALID, "cursor is not valid");
    raw[n] = '\0';
    const char *colon = memchr(raw, ':', n);
    if (!colon) return nt_fail(err, NT_ERR_INVALID, "cursor is not valid");
    long long sc = nt_decimal_parse(raw, (size_t)(colon - raw), 0, 999999999999999LL);
    size_t idlen = n - (size_t)(colon - raw) - 1;
    if (sc < 0 || idlen == 0 || idlen > STORE_ID_MAX)
        return nt_fail(err, NT_ERR_INVALID, "cursor is not valid");
    memcpy(id, colon + 1, idlen);
    id[idlen] = '\0';
    if (!id_valid(id) || strlen(id) != idlen)
        return nt_fail(err, NT_ERR_INVALID, "cursor is not valid");
    *score = sc;
    return NT_OK;
}

/* The list script's call: the index keys the filter names (their
 * intersection is walked), the score range, the cursor and the limits. */
static void alert_list_cmd(const store *s, const store_alert_filter *f, const char *status,
                           long long cs, const char *cid, size_t limit, cmd *c)
{
    int has_max = f->has_until;
    long long max = f->until;
    if (cs >= 0 && (!has_max || cs < max)) max = cs, has_max = 1;
    cmd_str(c, "EVALSHA");
    cmd_str(c, s->sha[SCRIPT_LIST]);
    int nkeys = !!status + nonempty(f->rule_id) + nonempty(f->account) + nonempty(f->user);
    cmd_ll(c, nkeys ? nkeys : 1);
    if (status) cmd_fmt(c, "nt:alerts:status:%s", status);
    if (nonempty(f->rule_id)) cmd_fmt(c, "nt:alerts:rule:%s", f->rule_id);
    if (nonempty(f->account)) cmd_fmt(c, "nt:alerts:account:%s", f->account);
    if (nonempty(f->user)) cmd_fmt(c, "nt:alerts:user:%s", f->user);
    if (!nkeys) cmd_str(c, "nt:alerts");
    if (has_max)
        cmd_ll(c, max);
    else
        cmd_str(c, "+inf");
    if (f->has_since)
        cmd_ll(c, f->since);
    else
        cmd_str(c, "-inf");
    if (cs >= 0)
        cmd_ll(c, cs);
    else
        cmd_str(c, "");
    cmd_str(c, cid);
    cmd_ll(c, (long long)limit);
    cmd_ll(c, (long long)limit + STORE_LIST_SCAN);
    cmd_str(c, or_empty(status));
    cmd_str(c, or_empty(f->rule_id));
    cmd_str(c, or_empty(f->account));
    cmd_str(c, or_empty(f->user));
}

/* HGETALL of each listed id in one round trip, as alert documents appended
 * to arr; ids trimmed since the script ran, or whose status changed, are
 * left out. */
static nt_status alert_list_docs(store *s, const redisReply *ids, const char *status, json_t *arr,
                                 nt_err *err)
{
    size_t nids = ids->elements / 2;
    redisReply **rep = NULL;
    batch b = {0};
    cmd c = {0};
    nt_status st = NT_OK;
    for (size_t i = 0; i < nids && st == NT_OK; i++) {
        cmd_str(&c, "HGETALL");
        cmd_fmt(&c, "nt:alert:%.*s", (int)ids->element[2 * i]->len, ids->element[2 * i]->str);
        st = batch_cmd(&b, &c, err);
    }
    if (st != NT_OK) goto done;
    if (nids) {
        rep = calloc(nids, sizeof *rep);
        if (!rep) {
            st = store_nomem(err);
            goto done;
        }
        st = store_exec(s, &b, rep, err);
        if (st != NT_OK) goto done;
    }
    for (size_t i = 0; i < nids && st == NT_OK; i++) {
        const redisReply *idr = ids->element[2 * i];
        char id[STORE_ID_MAX + 1];
        snprintf(id, sizeof id, "%.*s", (int)idr->len, idr->str);
        if (reply_is_error(rep[i])) {
            st = store_failf(s, err, "HGETALL: %s", rep[i]->str);
            break;
        }
        json_t *doc = NULL;
        st = alert_document(s, id, rep[i], &doc, err);
        if (st == NT_ERR_NOTFOUND) { /* trimmed or expired since the script ran */
            st = NT_OK;
            continue;
        }
        if (st != NT_OK) break;
        /* The status may have changed between the two round trips. */
        if (status && strcmp(json_string_value(json_object_get(doc, "status")), status) != 0) {
            json_decref(doc);
            continue;
        }
        if (json_array_append_new(arr, doc) != 0) st = store_nomem(err);
    }
done:
    if (rep) replies_free(rep, nids);
    free(rep);
    batch_clear(&b);
    return st;
}

nt_status store_alert_list(store *s, const store_alert_filter *f, json_t **alerts,
                           char **next_cursor, nt_err *err)
{
    *alerts = NULL;
    *next_cursor = NULL;
    size_t limit = f->limit ? f->limit : 100;
    if (limit > STORE_LIST_MAX)
        return nt_fail(err, NT_ERR_INVALID, "limit must be between 1 and %d", STORE_LIST_MAX);
    const char *status = nonempty(f->status) ? f->status : NULL;
    if (status && !store_alert_status_valid(status))
        return nt_fail(err, NT_ERR_INVALID, "status must be open, acknowledged or closed");
    long long cs = -1;
    char cid[STORE_ID_MAX + 1] = "";
    if (nonempty(f->cursor)) {
        nt_status st = cursor_decode(f->cursor, &cs, cid, err);
        if (st != NT_OK) return st;
    } else if (f->cursor) {
        return nt_fail(err, NT_ERR_INVALID, "cursor is not valid");
    }
    nt_status ready = store_ensure_sha(s, err);
    if (ready != NT_OK) return ready;

    cmd c = {0};
    alert_list_cmd(s, f, status, cs, cid, limit, &c);
    redisReply *r = NULL;
    json_t *arr = NULL;
    nt_status st = store_run1(s, &c, "list script failed", &r, err);
    if (st != NT_OK) return st;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements % 2 != 0 ||
        r->element[1]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_STRING ||
        r->element[3]->type != REDIS_REPLY_INTEGER) {
        st = store_failf(s, err, "list script returned an unexpected reply");
        goto done;
    }
    arr = json_array();
    if (!arr) {
        st = store_nomem(err);
        goto done;
    }
    st = alert_list_docs(s, r->element[0], status, arr, err);
    if (st == NT_OK && r->element[3]->integer == 1) {
        long long last;
        const redisReply *lid = r->element[2];
        if (reply_ll(r->element[1], &last) != 0 || lid->len == 0 || lid->len > STORE_ID_MAX) {
            st = store_failf(s, err, "list script returned a bad position");
        } else {
            *next_cursor = cursor_encode(last, lid->str, lid->len);
            if (!*next_cursor) st = store_nomem(err);
        }
    }

done:
    if (r) freeReplyObject(r);
    if (st != NT_OK) {
        json_decref(arr);
        free(*next_cursor);
        *next_cursor = NULL;
    } else {
        *alerts = arr;
    }
    return st;
}

/* ---- exceptions ---------------------------------------------------------------------- */

static nt_status exception_id_check(const char *id, nt_err *err)
{
    if (!id_valid(id))
        return nt_fail(err, NT_ERR_INVALID,
                       "exception id must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '-'");
    return NT_OK;
}

/* Runs the exception script; *version = its reply (0 = conflict / not found,
 * -1 / -2 = a quota is full). */
static nt_status exception_script(store *s, const char *op, const char *id, const char *json,
                                  const store_exception_quota *q, long long *version, nt_err *err)
{
    nt_status ready = store_ensure_sha(s, err);
    if (ready != NT_OK) return ready;
    cmd c = {0};
    cmd_str(&c, "EVALSHA");
    cmd_str(&c, s->sha[SCRIPT_EXCEPTION]);
    cmd_ll(&c, 3);
    cmd_str(&c, "nt:exceptions");
    cmd_str(&c, "nt:exceptions:version");
    cmd_str(&c, "nt:exceptions:rule");
    cmd_str(&c, op);
    cmd_str(&c, id);
    cmd_str(&c, or_empty(json));
    cmd_str(&c, q ? or_empty(q->rule_id) : "");
    cmd_ll(&c, q ? (long long)q->max_total : 0);
    cmd_ll(&c, q ? (long long)q->max_per_rule : 0);
    redisReply *r;
    nt_status st = store_run1(s, &c, "exception script failed", &r, err);
    if (st != NT_OK) return st;
    if (r->type != REDIS_REPLY_INTEGER)
        st = store_failf(s, err, "exception script returned an unexpected reply");
    else
        *version = r->integer;
    freeReplyObject(r);
    return st;
}

nt_status store_exception_put(store *s, const char *id, const char *json, int create,
                              const store_exception_quota *q, nt_err *err)
{
    nt_status st = exception_id_check(id, err);
    if (st != NT_OK) return st;
    json_error_t jerr;
    json_t *parsed = json ? json_loads(json, 0, &jerr) : NULL;
    int is_obj = json_is_object(parsed);
    json_decref(parsed);
    if (!is_obj) return nt_fail(err, NT_ERR_INVALID, "exception %s is not a JSON object", id);
    long long version = 0;
    st = exception_script(s, create ? "c" : "r", id, json, q, &version, err);
    if (st != NT_OK) return st;
    if (version == -1)
        return nt_fail(err, NT_ERR_LIMIT, "there are already %zu exception items, the most allowed",
                       q->max_total);
    if (version == -2) {
        if (nonempty(q->rule_id))
            return nt_fail(err, NT_ERR_LIMIT,
                           "rule_id %.128s already has %zu exception items, the most allowed",
                           q->rule_id, q->max_per_rule);
        return nt_fail(err, NT_ERR_LIMIT,
                       "there are already %zu exception items without a rule_id, the most allowed",
                       q->max_per_rule);
    }
    if (version == 0)
        return create ? nt_fail(err, NT_ERR_CONFLICT, "exception %s already exists", id)
                      : nt_fail(err, NT_ERR_NOTFOUND, "exception %s not found", id);
    return NT_OK;
}

nt_status store_exception_delete(store *s, const char *id, nt_err *err)
{
    nt_status st = exception_id_check(id, err);
    if (st != NT_OK) return st;
    long long version = 0;
    st = exception_script(s, "d", id, NULL, NULL, &version, err);
    if (st != NT_OK) return st;
    if (version == 0) return nt_fail(err, NT_ERR_NOTFOUND, "exception %s not found", id);
    return NT_OK;
}

nt_status store_exception_get(store *s, const char *id, char **json, nt_err *err)
{
    *json = NULL;
    nt_status st = exception_id_check(id, err);
    if (st != NT_OK) return st;
    cmd c = {0};
    cmd_str(&c, "HGET");
    cmd_str(&c, "nt:exceptions");
    cmd_str(&c, id);
    redisReply *r;
    st = store_run1(s, &c, "HGET", &r, err);
    if (st != NT_OK) return st;
    if (r->type == REDIS_REPLY_NIL) {
        st = nt_fail(err, NT_ERR_NOTFOUND, "exception %s not found", id);
    } else if (r->type != REDIS_REPLY_STRING) {
        st = store_failf(s, err, "HGET returned an unexpected reply");
    } else {
        *json = strndup(r->str, r->len);
        if (!*json) st = store_nomem(err);
    }
    freeReplyObject(r);
    return st;
}

/* One field/value pair of an HGETALL reply, for sorting by field. */
typedef struct reply_pair {
    const redisReply *key, *value;
} reply_pair;

static int reply_pair_cmp(const void *a, const void *b)
{
    const redisReply *x = ((const reply_pair *)a)->key, *y = ((const reply_pair *)b)->key;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->str, y->str, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

nt_status store_exception_all(store *s, json_t **items, long long *version, nt_err *err)
{
    *items = NULL;
    *version = 0;
    batch b = {0};
    cmd c = {0};
    redisReply *rep[4] = {0};
    reply_pair *pairs = NULL;
    json_t *arr = NULL;
    nt_status st = NT_OK;
    cmd_str(&c, "MULTI");
    st = batch_cmd(&b, &c, err);
    cmd_str(&c, "HGETALL");
    cmd_str(&c, "nt:exceptions");
    if (st == NT_OK) st = batch_cmd(&b, &c, err);
    cmd_str(&c, "GET");
    cmd_str(&c, "nt:exceptions:version");
    if (st == NT_OK) st = batch_cmd(&b, &c, err);
    cmd_str(&c, "EXEC");
    if (st == NT_OK) st = batch_cmd(&b, &c, err);
    cmd_reset(&c);
    if (st == NT_OK) st = store_exec(s, &b, rep, err);
    if (st != NT_OK) goto done;
    const redisReply *ex = rep[3];
    if (reply_is_error(ex) || ex->type != REDIS_REPLY_ARRAY || ex->elements != 2 ||
        ex->element[0]->type != REDIS_REPLY_ARRAY) {
        st = store_failf(s, err, "reading exceptions failed: %s",
                         reply_is_error(ex)       ? ex->str
                         : reply_is_error(rep[1]) ? rep[1]->str
                                                  : "unexpected reply");
        goto done;
    }
    const redisReply *h = ex->element[0];
    if (ex->element[1]->type != REDIS_REPLY_NIL && reply_ll(ex->element[1], version) != 0) {
        st = store_failf(s, err, "nt:exceptions:version is not an integer");
        goto done;
    }
    size_t n = h->elements / 2;
    arr = json_array();
    pairs = calloc(n ? n : 1, sizeof *pairs);
    if (!arr || !pairs) {
        st = store_nomem(err);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        pairs[i].key = h->element[2 * i];
        pairs[i].value = h->element[2 * i + 1];
    }
    qsort(pairs, n, sizeof *pairs, reply_pair_cmp);
    for (size_t i = 0; i < n; i++) {
        const redisReply *v = pairs[i].value;
        json_error_t jerr;
        json_t *item =
            v && v->type == REDIS_REPLY_STRING ? json_loadb(v->str, v->len, 0, &jerr) : NULL;
        if (!json_is_object(item)) {
            json_decref(item);
            st = store_failf(s, err, "exception %.*s is stored as invalid JSON",
                             (int)(pairs[i].key->len > 128 ? 128 : pairs[i].key->len),
                             pairs[i].key->str);
            goto done;
        }
        if (json_array_append_new(arr, item) != 0) {
            st = store_nomem(err);
            goto done;
        }
    }

done:
    replies_free(rep, 4);
    batch_clear(&b);
    free(pairs);
    if (st != NT_OK)
        json_decref(arr);
    else
        *items = arr;
    return st;
}

static int cstr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

nt_status store_exception_page(store *s, const char *cursor, size_t limit, json_t **items,
                               char **next_cursor, nt_err *err)
{
    *items = NULL;
    *next_cursor = NULL;
    char after[STORE_ID_MAX + 1] = "";
    size_t after_len = 0;
    if (limit == 0 || limit > STORE_EXCEPTION_PAGE_MAX)
        return nt_fail(err, NT_ERR_INVALID, "limit must be between 1 and %d",
                       STORE_EXCEPTION_PAGE_MAX);
    if (cursor && (strlen(cursor) > 4 * STORE_ID_MAX / 3 + 4 ||
                   b64url_decode(cursor, strlen(cursor), (unsigned char *)after, sizeof after - 1,
                                 &after_len, NULL) != NT_OK ||
                   after_len == 0 || memchr(after, 0, after_len) || !id_valid(after)))
        return nt_fail(err, NT_ERR_INVALID, "cursor is not valid");
    after[after_len] = 0;

    cmd c = {0};
    redisReply *keys = NULL, *vals = NULL;
    const char **page = NULL;
    json_t *arr = NULL;
    nt_status st;
    cmd_str(&c, "HKEYS");
    cmd_str(&c, "nt:exceptions");
    if ((st = store_run1(s, &c, "HKEYS", &keys, err)) != NT_OK) return st;
    if (keys->type != REDIS_REPLY_ARRAY) {
        st = store_failf(s, err, "HKEYS returned an unexpected reply");
        goto done;
    }
    /* Ids are short (<= 128 bytes): sorting them all is cheap; only one
     * page of documents is ever read. */
    size_t n = 0, from = 0;
    page = calloc(keys->elements ? keys->elements : 1, sizeof *page);
    arr = json_array();
    if (!page || !arr) {
        st = store_nomem(err);
        goto done;
    }
    for (size_t i = 0; i < keys->elements; i++)
        if (keys->element[i]->type == REDIS_REPLY_STRING) page[n++] = keys->element[i]->str;
    qsort(page, n, sizeof *page, cstr_cmp);
    while (from < n && after_len && strcmp(page[from], after) <= 0)
        from++;
    size_t take = n - from < limit ? n - from : limit;
    if (take == 0) goto done;
    /* HMGET with up to STORE_EXCEPTION_PAGE_MAX fields: more than a cmd holds. */
    {
        const char **argv = calloc(take + 2, sizeof *argv);
        size_t *lens = calloc(take + 2, sizeof *lens);
        batch b = {0};
        st = argv && lens ? NT_OK : store_nomem(err);
        if (st == NT_OK) {
            argv[0] = "HMGET";
            argv[1] = "nt:exceptions";
            for (size_t i = 0; i < take; i++)
                argv[i + 2] = page[from + i];
            for (size_t i = 0; i < take + 2; i++)
                lens[i] = strlen(argv[i]);
            st = batch_argv(&b, (int)(take + 2), argv, lens, err);
        }
        if (st == NT_OK) st = store_exec(s, &b, &vals, err);
        batch_clear(&b);
        free(argv);
        free(lens);
        if (st != NT_OK) goto done;
    }
    if (reply_is_error(vals) || vals->type != REDIS_REPLY_ARRAY || vals->elements != take) {
        st = store_failf(s, err, "HMGET returned an unexpected reply");
        goto done;
    }
    for (size_t i = 0; i < take; i++) {
        const redisReply *v = vals->element[i];
        if (v->type == REDIS_REPLY_NIL) continue; /* deleted since HKEYS */
        json_error_t jerr;
        json_t *item = v->type == REDIS_REPLY_STRING ? json_loadb(v->str, v->len, 0, &jerr) : NULL;
        if (!json_is_object(item)) {
            json_decref(item);
            st = store_failf(s, err, "exception %.128s is stored as invalid JSON", page[from + i]);
            goto done;
        }
        if (json_array_append_new(arr, item) != 0) {
            st = store_nomem(err);
            goto done;
        }
    }
    if (from + take < n) {
        const char *last = page[from + take - 1];
        size_t last_len = strlen(last), cap = b64url_encoded_len(last_len) + 1;
        *next_cursor = malloc(cap);
        if (!*next_cursor || b64url_encode((const unsigned char *)last, last_len, *next_cursor, cap,
                                           NULL, NULL) != NT_OK) {
            free(*next_cursor);
            *next_cursor = NULL;
            st = store_nomem(err);
        }
    }

done:
    if (keys) freeReplyObject(keys);
    if (vals) freeReplyObject(vals);
    free(page);
    if (st != NT_OK) {
        json_decref(arr);
        free(*next_cursor);
        *next_cursor = NULL;
    } else {
        *items = arr;
    }
    return st;
}

nt_status store_exception_version(store *s, long long *version, nt_err *err)
{
    *version = 0;
    cmd c = {0};
    cmd_str(&c, "GET");
    cmd_str(&c, "nt:exceptions:version");
    redisReply *r;
    nt_status st = store_run1(s, &c, "GET", &r, err);
    if (st != NT_OK) return st;
    if (r->type != REDIS_REPLY_NIL && reply_ll(r, version) != 0)
        st = store_failf(s, err, "nt:exceptions:version is not an integer");
    freeReplyObject(r);
    return st;
}

/* ---- rejects --------------------------------------------------------------------------- */

static json_t *json_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

nt_status store_reject_push(store *s, const store_reject *r, size_t n, nt_err *err)
{
    if (n == 0 || s->reject_cap == 0) return NT_OK; /* --reject-cap 0: no dead-letter list */
    const char **argv = calloc(n + 2, sizeof *argv);
    size_t *lens = calloc(n + 2, sizeof *lens);
    char **texts = calloc(n, sizeof *texts);
    batch b = {0};
    redisReply *rep[2] = {0};
    nt_status st = NT_OK;
    if (!argv || !lens || !texts) {
        st = store_nomem(err);
        goto done;
    }
    argv[0] = "LPUSH";
    argv[1] = "nt:rejects";
    lens[0] = 5;
    lens[1] = 10;
    for (size_t i = 0; i < n; i++) {
        char at[NT_TIME_BUF];
        /* json_string() refuses invalid UTF-8; the prefix is escaped by its producer. */
        json_t *o =
            json_pack("{s:o, s:s, s:o, s:o, s:o, s:o}", "reason", json_str_or_null(r[i].reason),
                      "at", nt_time_format(r[i].at, at), "route", json_str_or_null(r[i].route),
                      "delivery_id", json_str_or_null(r[i].delivery_id), "record_index",
                      r[i].record_index >= 0 ? json_integer(r[i].record_index) : json_null(),
                      "prefix", json_str_or_null(r[i].prefix));
        texts[i] = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!texts[i]) {
            st = nt_fail(err, NT_ERR_INVALID,
                         "reject %zu cannot be encoded (a field is not valid UTF-8)", i);
            goto done;
        }
        argv[i + 2] = texts[i];
        lens[i + 2] = strlen(texts[i]);
    }
    st = batch_argv(&b, (int)(n + 2), argv, lens, err);
    if (st == NT_OK) {
        cmd c = {0};
        cmd_str(&c, "LTRIM");
        cmd_str(&c, "nt:rejects");
        cmd_ll(&c, 0);
        cmd_ll(&c, (long long)s->reject_cap - 1);
        st = batch_cmd(&b, &c, err);
    }
    if (st == NT_OK) st = store_exec(s, &b, rep, err);
    for (int i = 0; i < 2 && st == NT_OK; i++)
        if (reply_is_error(rep[i]))
            st = store_failf(s, err, "pushing rejects failed: %s", rep[i]->str);

done:
    replies_free(rep, 2);
    batch_clear(&b);
    if (texts)
        for (size_t i = 0; i < n; i++)
            free(texts[i]);
    free(texts);
    free(argv);
    free(lens);
    return st;
}

nt_status store_reject_list(store *s, size_t limit, json_t **out, nt_err *err)
{
    *out = NULL;
    if (s->reject_cap == 0) { /* nothing is kept (and LRANGE 0 -1 would return everything) */
        *out = json_array();
        return *out ? NT_OK : store_nomem(err);
    }
    if (limit == 0) limit = 100;
    if (limit > s->reject_cap) limit = s->reject_cap;
    cmd c = {0};
    cmd_str(&c, "LRANGE");
    cmd_str(&c, "nt:rejects");
    cmd_ll(&c, 0);
    cmd_ll(&c, (long long)limit - 1);
    redisReply *r;
    nt_status st = store_run1(s, &c, "LRANGE", &r, err);
    if (st != NT_OK) return st;
    json_t *arr = json_array();
    if (!arr)
        st = store_nomem(err);
    else if (r->type != REDIS_REPLY_ARRAY)
        st = store_failf(s, err, "LRANGE: unexpected reply");
    for (size_t i = 0; st == NT_OK && i < r->elements; i++) {
        const redisReply *v = r->element[i];
        json_error_t jerr;
        json_t *o = v->type == REDIS_REPLY_STRING ? json_loadb(v->str, v->len, 0, &jerr) : NULL;
        if (!json_is_object(o)) {
            json_decref(o);
            continue; /* not ours: someone else pushed to nt:rejects */
        }
        if (json_array_append_new(arr, o) != 0) st = store_nomem(err);
    }
    freeReplyObject(r);
    if (st != NT_OK)
        json_decref(arr);
    else
        *out = arr;
    return st;
}

/* ---- rules ------------------------------------------------------------------------------- */

nt_status store_rule_stats(store *s, const char *rule_id, json_t **out, nt_err *err)
{
    *out = NULL;
    if (!nonempty(rule_id)) return nt_fail(err, NT_ERR_INVALID, "rule id is empty");
    cmd c = {0};
    cmd_str(&c, "HGETALL");
    cmd_fmt(&c, "nt:rule:%s:stats", rule_id);
    redisReply *r;
    nt_status st = store_run1(s, &c, "HGETALL", &r, err);
    if (st != NT_OK) return st;
    long long matched = 0, alerts = 0, last = 0, since = 0;
    int has_last = 0, has_since = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (field_is(k, "events_matched"))
            reply_ll(v, &matched);
        else if (field_is(k, "alerts"))
            reply_ll(v, &alerts);
        else if (field_is(k, "last_alert_ms"))
            has_last = reply_ll(v, &last) == 0;
        else if (field_is(k, "history_since_ms"))
            has_since = reply_ll(v, &since) == 0;
    }
    freeReplyObject(r);
    *out = json_pack("{s:I, s:I, s:o, s:o}", "events_matched", (json_int_t)matched, "alerts",
                     (json_int_t)alerts, "last_alert_at", json_time_or_null(has_last, last),
                     "history_since", json_time_or_null(has_since, since));
    return *out ? NT_OK : store_nomem(err);
}

nt_status store_threshold_groups(store *s, const char *rule_id, nt_time_ms now,
                                 nt_time_ms window_ms, long long *out, nt_err *err)
{
    *out = 0;
    if (!nonempty(rule_id)) return nt_fail(err, NT_ERR_INVALID, "rule id is empty");
    cmd c = {0};
    cmd_str(&c, "ZCOUNT");
    cmd_fmt(&c, "nt:thr:%s:groups", rule_id);
    cmd_ll(&c, now - window_ms);
    cmd_str(&c, "+inf");
    redisReply *r;
    nt_status st = store_run1(s, &c, "ZCOUNT", &r, err);
    if (st != NT_OK) return st;
    if (reply_ll(r, out) != 0) st = store_failf(s, err, "ZCOUNT returned an unexpected reply");
    freeReplyObject(r);
    return st;
}

nt_status store_learning_since(store *s, const char *rule_id, nt_time_ms now, nt_time_ms *since,
                               nt_err *err)
{
    if (!nonempty(rule_id)) return nt_fail(err, NT_ERR_INVALID, "rule id is empty");
    batch b = {0};
    cmd c = {0};
    redisReply *rep[2] = {0};
    cmd_str(&c, "SET");
    cmd_fmt(&c, "nt:rule:%s:learning_since", rule_id);
    cmd_ll(&c, now);
    cmd_str(&c, "NX");
    nt_status st = batch_cmd(&b, &c, err);
    cmd_str(&c, "GET");
    cmd_fmt(&c, "nt:rule:%s:learning_since", rule_id);
    if (st == NT_OK) st = batch_cmd(&b, &c, err);
    cmd_reset(&c);
    if (st == NT_OK) st = store_exec(s, &b, rep, err);
    if (st == NT_OK) {
        long long v;
        if (reply_is_error(rep[0]) || reply_is_error(rep[1]))
            st = store_failf(s, err, "learning_since: %s",
                             reply_is_error(rep[0]) ? rep[0]->str : rep[1]->str);
        else if (reply_ll(rep[1], &v) != 0)
            st = store_failf(s, err, "nt:rule:%s:learning_since is not an integer", rule_id);
        else
            *since = v;
    }
    replies_free(rep, 2);
    batch_clear(&b);
    return st;
}

/* ---- raw commands (outputs) ------------------------------------------------------------ */

nt_status store_command(store *s, int argc, const char **argv, const size_t *lens,
                        struct redisReply **out, nt_err *err)
{
    *out = NULL;
    if (argc <= 0 || !argv) return nt_fail(err, NT_ERR_INVALID, "empty Redis command");
    batch b = {0};
    redisReply *r = NULL;
    nt_status st = batch_argv(&b, argc, argv, lens, err);
    if (st == NT_OK) st = store_exec(s, &b, &r, err);
    batch_clear(&b);
    if (st == NT_OK && reply_is_error(r)) {
        char what[48];
        snprintf(what, sizeof what, "%.*s", (int)(lens ? (lens[0] < 40 ? lens[0] : 40) : 0),
                 argv[0]);
        st = store_failf(s, err, "%s: %s", what, r->str);
        freeReplyObject(r);
        r = NULL;
    }
    *out = r;
    return st;
}

/* ---- the nt_history view (history.h) ---------------------------------------- */

static nt_status store_history_observe(void *ctx, store_obs *obs, size_t n, nt_err *err)
{
    return store_observe(ctx, obs, n, err);
}

nt_history store_history(store *st)
{
    return (nt_history){.ctx = st, .observe = store_history_observe};
}
