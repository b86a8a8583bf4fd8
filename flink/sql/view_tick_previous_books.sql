-- The tick path, step 2: next to each quote's books, the books just before it (previous_books,
-- one ROW of every venue column): what every pair's previous evaluation compared, so no
-- per-pair state is needed to know whether it passed (step 3). Partitioned by symbol alone like
-- step 1, so a symbol's rows keep their order at any parallelism.
CREATE TEMPORARY VIEW tick_previous_books AS
SELECT *,
$previous_books
FROM tick_books
WINDOW o AS (PARTITION BY symbol ORDER BY proc_time)
