"""The Redis adapter of the read-model port (`store.ReadModelStore`).

Each write is one Lua script over the six keys of one customer (one hash tag, so
one Cluster slot): it checks the generation and the stored source offset, applies
the operation and stores the new offset, atomically. A batch is sent as one
pipeline of script calls (non-transactional: each script is atomic on its own and
the scripts are independent, so a crash mid-batch leaves a prefix applied, which
the offsets make safe to replay). Redis errors become `Unavailable`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis
from redis.commands.core import Script

from projections.read.errors import Unavailable
from projections.read.model import PutInvoice, RaiseAlert, ReplaceState, ResolveAlert, Write
from projections.read.series import ALERT_HISTORY_LIMIT, TREND_LIMIT
from projections.read.store import DumpValue, Keys, new_generation_token, strip_generation

# KEYS: offsets, state, alerts, invoices, alert_history, trend.
# ARGV: gen, source field, offset, op, args... The list rules mirror `projections.read.series`
# (the contract suite runs both); `dec_cmp` compares plain decimal strings exactly,
# digit by digit, because Lua numbers are doubles and money must not be rounded.
_WRITE = """
local function dec_split(s)
  local neg = string.sub(s, 1, 1) == '-'
  if neg then s = string.sub(s, 2) end
  local int, frac = string.match(s, '^(%d+)%.?(%d*)$')
  int = (string.gsub(int, '^0+', ''))
  frac = (string.gsub(frac, '0+$', ''))
  if int == '' and frac == '' then neg = false end
  return neg, int, frac
end
local function digits_cmp(a, b)
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y and -1 or 1 end
  end
  return 0
end
local function dec_cmp(a, b)
  local an, ai, af = dec_split(a)
  local bn, bi, bf = dec_split(b)
  if an ~= bn then return an and -1 or 1 end
  local c
  if #ai ~= #bi then c = #ai < #bi and -1 or 1 else c = digits_cmp(ai, bi) end
  if c == 0 then
    local n = math.max(#af, #bf)
    c = digits_cmp(af .. string.rep('0', n - #af), bf .. string.rep('0', n - #bf))
  end
  if an then return -c end
  return c
end

local gen = ARGV[1]
local stored_gen = redis.call('HGET', KEYS[1], '_gen')
if stored_gen ~= gen then
  if stored_gen then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
  end
  redis.call('HSET', KEYS[1], '_gen', gen)
else
  local stored = redis.call('HGET', KEYS[1], ARGV[2])
  if stored and tonumber(stored) >= tonumber(ARGV[3]) then return 0 end
end
local op = ARGV[4]
if op == 'state' then
  -- ARGV[5] trend limit, [6] model, [7] last top-up, [8] value ('' = no series),
  -- [9] the point's JSON, [10...] the state fields.
  local before = redis.call('HMGET', KEYS[2], 'model', 'last_topup')
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], unpack(ARGV, 10))
  if ARGV[8] == '' then
    redis.call('DEL', KEYS[6])
  else
    local restart = (before[1] or '') ~= ARGV[6] or (before[2] or '') ~= ARGV[7]
    local c = 1
    local last = redis.call('LINDEX', KEYS[6], -1)
    if last and not restart then c = dec_cmp(ARGV[8], cjson.decode(last)['value']) end
    if restart or c > 0 then
      redis.call('DEL', KEYS[6])
      redis.call('RPUSH', KEYS[6], ARGV[9])
    elseif c < 0 then
      redis.call('RPUSH', KEYS[6], ARGV[9])
      if redis.call('LLEN', KEYS[6]) > tonumber(ARGV[5]) then
        local all = redis.call('LRANGE', KEYS[6], 0, -1)
        local kept = {}
        for i = 1, #all, 2 do kept[#kept + 1] = all[i] end
        redis.call('DEL', KEYS[6])
        redis.call('RPUSH', KEYS[6], unpack(kept))
      end
    end
  end
elseif op == 'raise' then
  -- ARGV[5] alert id, [6] its JSON, [7] the history entry, [8] history limit
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
  redis.call('LPUSH', KEYS[5], ARGV[7])
  redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[8]) - 1)
elseif op == 'resolve' then
  -- ARGV[5] the raised alert's id, [6] the history entry, [7] history limit
  redis.call('HDEL', KEYS[3], ARGV[5])
  redis.call('LPUSH', KEYS[5], ARGV[6])
  redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[7]) - 1)
elseif op == 'invoice' then
  redis.call('HSET', KEYS[4], ARGV[5], ARGV[6])
else
  return redis.error_reply('unknown op ' .. op)
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1
"""

# KEYS: position. ARGV: gen, next offset. Positions only move forward within a gen.
_ADVANCE = """
local cur = redis.call('HMGET', KEYS[1], 'gen', 'next')
if cur[1] == ARGV[1] and tonumber(cur[2]) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'next', ARGV[2])
return 1
"""


def _op_args(write: Write) -> list[str]:
    op = write.operation
    if isinstance(op, ReplaceState):
        flat = [item for pair in sorted(op.fields.items()) for item in pair]
        t = op.trend
        trend = ["", "", "", ""] if t is None else [t.model, t.topup, t.value, t.payload]
        return ["state", str(TREND_LIMIT), *trend, *flat]
    if isinstance(op, RaiseAlert):
        return ["raise", op.alert_id, op.payload, op.history, str(ALERT_HISTORY_LIMIT)]
    if isinstance(op, ResolveAlert):
        return ["resolve", op.raised_alert_id, op.history, str(ALERT_HISTORY_LIMIT)]
    if isinstance(op, PutInvoice):
        return ["invoice", op.invoice_id, op.payload]
    raise TypeError(f"unknown operation {op!r}")


class RedisStore:
    """Read models in Redis. `client` must use `decode_responses=True`."""

    def __init__(self, client: redis.Redis, keys: Keys | None = None) -> None:
        self.client = client
        self.keys = keys or Keys()
        self._write: Script = client.register_script(_WRITE)
        self._advance: Script = client.register_script(_ADVANCE)

    @classmethod
    def from_url(cls, url: str, keys: Keys | None = None) -> RedisStore:
        return cls(redis.Redis.from_url(url, decode_responses=True), keys)

    def generation(self) -> str | None:
        try:
            value = cast(str | None, self.client.get(self.keys.generation()))
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        return value

    def ensure_generation(self) -> str:
        key = self.keys.generation()
        try:
            self.client.set(key, new_generation_token(), nx=True)
            value = cast(str | None, self.client.get(key))
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        if value is None:  # lost again between the two calls: try once more
            return self.ensure_generation()
        return value

    def apply(self, generation: str, writes: Sequence[Write]) -> list[bool]:
        if not writes:
            return []
        try:
            pipe = self.client.pipeline(transaction=False)
            for write in writes:
                args = [generation, write.source.field, str(write.source.offset)]
                self._write(
                    keys=list(self.keys.customer(write.customer_id)),
                    args=[*args, *_op_args(write)],
                    client=pipe,
                )
            results: list[Any] = pipe.execute()
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        return [bool(r) for r in results]

    def advance(self, generation: str, topic: str, partition: int, next_offset: int) -> None:
        try:
            self._advance(
                keys=[self.keys.position(topic, partition)], args=[generation, next_offset]
            )
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc

    def positions(self, generation: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        wanted = list(partitions)
        try:
            pipe = self.client.pipeline(transaction=False)
            for partition in wanted:
                pipe.hmget(self.keys.position(topic, partition), ["gen", "next"])
            rows: list[list[str | None]] = pipe.execute()
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        return {
            partition: int(nxt)
            for partition, (gen, nxt) in zip(wanted, rows, strict=True)
            if gen == generation and nxt is not None
        }

    def clear(self) -> str:
        try:
            batch: list[str] = []
            for key in self.client.scan_iter(match=self.keys.pattern(), count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    self.client.unlink(*batch)
                    batch.clear()
            if batch:
                self.client.unlink(*batch)
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        return self.ensure_generation()

    def state(self, customer_id: str) -> dict[str, str]:
        return self._hgetall(self.keys.state(customer_id))

    def state_fields(self, customer_id: str, fields: Sequence[str]) -> list[str | None]:
        try:
            values = cast(list[str | None], self.client.hmget(self.keys.state(customer_id), fields))
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        return values

    def alerts(self, customer_id: str) -> dict[str, str]:
        return self._hgetall(self.keys.alerts(customer_id))

    def invoices(self, customer_id: str) -> dict[str, str]:
        return self._hgetall(self.keys.invoices(customer_id))

    def alert_history(self, customer_id: str) -> list[str]:
        return self._lrange(self.keys.alert_history(customer_id))

    def trend(self, customer_id: str) -> list[str]:
        return self._lrange(self.keys.trend(customer_id))

    def _lrange(self, key: str) -> list[str]:
        try:
            value = cast(list[str], self.client.lrange(key, 0, -1))
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        return value

    def _hgetall(self, key: str) -> dict[str, str]:
        try:
            value = cast(dict[str, str], self.client.hgetall(key))
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        return value

    def dump(self) -> dict[str, DumpValue]:
        out: dict[str, DumpValue] = {}
        try:
            for key in self.client.scan_iter(match=self.keys.pattern(), count=1000):
                kind = self.client.type(key)
                if kind == "hash":
                    value = cast(dict[str, str], self.client.hgetall(key))
                    out[key] = strip_generation(key, value, self.keys)
                elif kind == "list":
                    out[key] = cast(list[str], self.client.lrange(key, 0, -1))
        except redis.RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        return dict(sorted(out.items()))
