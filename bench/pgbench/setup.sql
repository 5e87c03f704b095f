-- Bench fixtures: 1024 bookable providers, each in network with every payer, numbered for pgbench.
create table if not exists bench_providers (n integer primary key, id uuid not null);
insert into providers (first_name, last_name, is_bookable, intakeq_practitioner_id)
select 'Bench', 'Provider ' || n, true, '5f1a00000000000000000001' from generate_series(1, 1024) n
where not exists (select from bench_providers);
insert into bench_providers (n, id)
select row_number() over (order by id), id from providers where first_name = 'Bench' on conflict do nothing;
insert into provider_payer_networks (provider_id, payer_id)
select b.id, p.id from bench_providers b cross join payers p on conflict do nothing;
