-- =============================================================================================================
-- health_check: what GET /health calls to know the database answers, through the same path as a booking
-- (PostgREST, the service role, an API function).
-- =============================================================================================================

create function public.health_check()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object('database', 'ok');
$$;

revoke all on function public.health_check from public, anon, authenticated;
grant execute on function public.health_check to service_role;
