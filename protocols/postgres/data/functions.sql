-- PostgreSQL's built-in functions, by what calling one may do. Regenerate against the
-- oldest server Airlock supports:
--   psql -XAt -F "$(printf '\t')" -f protocols/postgres/data/functions.sql > protocols/postgres/data/functions.tsv
-- Classes: admin (acts on the server: files, programs, signals, replication, settings
-- files, statistics resets; PostgreSQL itself revokes EXECUTE from PUBLIC on most),
-- destructive (removes or overwrites large objects, rewinds sequences), write, session, setting
-- (set_config: judged by its arguments), sql1/sql2 (runs the SQL text in its
-- first/second argument), unknown (runs a cursor, whose query Airlock judged when it
-- was opened but not what it became), read (everything else). An overloaded name
-- takes its most dangerous overload's class.
with f as (
  select proname,
    case
      when proname = 'set_config' then 5
      when proname in ('query_to_xml', 'query_to_xmlschema', 'query_to_xml_and_xmlschema', 'ts_stat') then 6
      when proname = 'ts_rewrite' then 7
      when proacl is not null then 9
      when proname ~ '^(binary_upgrade_|pg_replication_origin|pg_logical_|brin_(de)?summarize|plpgsql_|pg_wal_replay|pg_backup_)'
        or proname ~ '(_replication_slot|_backend|_slot_advance|handler)$'
        or proname in ('pg_read_file_old', 'pg_rotate_logfile_old', 'pg_import_system_collations',
                       'pg_stop_making_pinned_objects', 'pg_extension_config_dump', 'pg_nextoid',
                       'gin_clean_pending_list', 'pg_promote', 'pg_switch_wal', 'pg_create_restore_point',
                       'pg_reload_conf', 'pg_rotate_logfile', 'lo_import', 'lo_export') then 9
      when proname in ('cursor_to_xml', 'cursor_to_xmlschema') then 8
      when proname in ('setval', 'lo_unlink', 'lo_truncate', 'lo_truncate64', 'lo_put', 'lowrite') then 4
      when proname in ('nextval', 'lo_create', 'lo_creat', 'lo_from_bytea', 'lo_open',
                       'lo_close', 'lo_lseek', 'lo_lseek64', 'lo_tell', 'lo_tell64') then 3
      when proname ~ '^pg_(try_)?advisory' or proname in ('pg_notify', 'setseed') then 2
      else 1
    end as rank
  from pg_proc
  where pronamespace = 'pg_catalog'::regnamespace
)
select proname,
  case max(rank) when 9 then 'admin' when 8 then 'unknown' when 7 then 'sql2' when 6 then 'sql1'
                 when 5 then 'setting' when 4 then 'destructive' when 3 then 'write' when 2 then 'session'
                 else 'read' end
from f group by proname order by proname;
