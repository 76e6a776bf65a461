-- PostgreSQL's reserved, column-name and type/function-name keywords. Unquoted and
-- followed by `(`, such a keyword is syntax (`exists (`, `coalesce(`, `join (`)
-- unless a built-in function has its name (`left(`). Regenerate with:
--   psql -XAt -f protocols/postgres/data/keywords.sql > protocols/postgres/data/keywords.txt
select word from pg_get_keywords() where catcode in ('R', 'C', 'T') order by word;
