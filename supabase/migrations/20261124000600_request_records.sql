-- =============================================================================================================
-- What the booking endpoint remembers about requests, beyond the appointments themselves.
-- =============================================================================================================

-- Idempotency keys. book_appointment claims the key first, in the booking's transaction: a concurrent request
-- with the same key waits for it, and a failed booking releases the key with everything else. A replay with
-- the same request gets the same appointment back; the same key with a different request is refused.
create table public.idempotency_keys (
  key            text primary key check (key ~ '^[!-~]{1,255}$'),   -- 1-255 visible ASCII characters
  request_hash   text not null check (request_hash ~ '^[0-9a-f]{64}$'), -- sha-256 of the normalised request
  request_id     public.request_id not null,                        -- the request that first used the key
  appointment_id uuid references public.appointments (id) on delete cascade,
  created_at     timestamptz not null default now()
);
create index idempotency_keys_appointment_id on public.idempotency_keys (appointment_id);

-- Failed booking requests. A failed booking rolls back entirely; the worker then records the failure here, so
-- every failed request can be found by its id. No patient data: the step, the contract code, a message.
create table public.booking_failures (
  id          uuid primary key default gen_random_uuid(),
  request_id  public.request_id not null,
  step        text not null check (step ~ '^[a-z][a-z_]{0,63}$'),
  code        text not null check (code ~ '^[A-Z][A-Z_]{0,63}$'),
  message     text not null check (char_length(message) between 1 and 1000),
  http_status integer check (http_status between 400 and 599),
  detail      text check (char_length(detail) <= 1000),
  created_at  timestamptz not null default now()
);
create index booking_failures_request_id on public.booking_failures (request_id);
create index booking_failures_created_at on public.booking_failures (created_at);

select private.close_to_browser_roles('public.idempotency_keys');
select private.close_to_browser_roles('public.booking_failures');
