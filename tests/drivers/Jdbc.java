// pgjdbc: statements reused past the driver's prepare threshold (where it switches
// to named server-side statements) keep their values, and masked columns stay masked,
// in text and binary transfer; types round-trip; transactions, savepoints and an
// error; COPY both ways; a batch; cancel; a pool of connections; a held DROP approved
// and another denied.
// Connects where the DRV_* variables say (see tests/drivers.rs). Exits non-zero on
// the first wrong value, naming it.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.sql.*;
import java.util.Properties;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public class Jdbc {
    static final String P = System.getenv("DRV_PREFIX");
    static final boolean AIRLOCK = "airlock".equals(System.getenv("DRV_THROUGH"));

    static void expect(boolean ok, String what) {
        if (!ok) {
            System.out.println("WRONG: " + what);
            System.exit(1);
        }
    }

    /** A password_hash: the real one directly; through Airlock [MASKED] in text, NULL in binary. */
    static void masked(String got, String real, boolean binary, String what) {
        String want = AIRLOCK ? (binary ? null : "[MASKED]") : real;
        expect(want == null ? got == null : want.equals(got), what + ": " + got + ", want " + want);
    }

    static String admin(String method, String path, String body) throws Exception {
        HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(System.getenv("DRV_ADMIN") + path))
                .header("Authorization", "Bearer " + System.getenv("DRV_APPROVER"))
                .method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        HttpResponse<String> res = HttpClient.newHttpClient().send(req.build(), HttpResponse.BodyHandlers.ofString());
        expect(res.statusCode() == 200, method + " " + path + ": " + res.statusCode() + " " + res.body());
        return res.body();
    }

    /** Pending approvals as (id, statement) pairs. */
    static java.util.List<String[]> pending() throws Exception {
        java.util.List<String[]> all = new java.util.ArrayList<>();
        Matcher o = Pattern.compile("\\{[^{}]*\\}").matcher(admin("GET", "/approvals", null));
        Pattern id = Pattern.compile("\"id\":\\s*\"([^\"]+)\"");
        Pattern statement = Pattern.compile("\"statement\":\\s*\"((?:[^\"\\\\]|\\\\.)*)\"");
        while (o.find()) {
            Matcher i = id.matcher(o.group()), st = statement.matcher(o.group());
            expect(i.find() && st.find(), "an approval's id and statement: " + o.group());
            all.add(new String[] {i.group(1), st.group(1)});
        }
        return all;
    }

    /** Waits for the held DROP of `table`, then approves or denies it. */
    static Thread decideLater(String table, String verdict) {
        Thread t = new Thread(() -> {
            try {
                for (long deadline = System.currentTimeMillis() + 30000; System.currentTimeMillis() < deadline; Thread.sleep(50)) {
                    for (String[] a : pending()) {
                        if (a[1].equals("DROP TABLE " + table)) {
                            admin("POST", "/approvals/" + a[0] + "/" + verdict, "approve".equals(verdict) ? "" : "{\"reason\":\"kept\"}");
                            return;
                        }
                    }
                }
                expect(false, "no approval pending for " + table + " after 30s");
            } catch (Exception e) {
                expect(false, "deciding " + table + ": " + e);
            }
        });
        if (AIRLOCK) t.start();
        return t;
    }

    /** Fails at once, naming it, when Airlock holds a statement other than the
     *  expected drops, instead of waiting for the approval to time out. */
    static void watchHolds() {
        Thread t = new Thread(() -> {
            try {
                for (;; Thread.sleep(200)) {
                    for (String[] a : pending()) {
                        expect(a[1].matches("DROP TABLE " + P + "_held_[ab]"), "held for approval: " + a[1]);
                    }
                }
            } catch (Exception e) {
                expect(false, "watching approvals: " + e);
            }
        });
        t.setDaemon(true);
        if (AIRLOCK) t.start();
    }

    static boolean exists(Connection c, String table) throws SQLException {
        try (PreparedStatement s = c.prepareStatement("SELECT to_regclass(?) IS NOT NULL")) {
            s.setString(1, table);
            try (ResultSet r = s.executeQuery()) {
                r.next();
                return r.getBoolean(1);
            }
        }
    }

    /** Arrays, an enum, a composite, json/jsonb, bytea, numeric and timestamptz come back as sent. */
    static void types(Connection c) throws Exception {
        String sql = "SELECT ?::int[] AS a, 'happy'::" + P + "_mood AS m, ROW(7, 'x')::" + P + "_pair AS p, "
                + "?::jsonb AS j, ?::json AS js, ?::bytea AS b, ?::numeric AS n, ?::timestamptz AS t";
        try (PreparedStatement s = c.prepareStatement(sql)) {
            for (int i = 0; i < 7; i++) {
                s.setArray(1, c.createArrayOf("int4", new Integer[] {1, null, 3}));
                s.setString(2, "{\"k\": [1, 2]}");
                s.setString(3, "{\"k\":1}");
                s.setBytes(4, new byte[] {0, (byte) 0xff, 65});
                s.setBigDecimal(5, new java.math.BigDecimal("12345678901234567890.123456789"));
                s.setObject(6, java.time.OffsetDateTime.parse("2024-02-29T12:34:56.789012Z"));
                try (ResultSet r = s.executeQuery()) {
                    expect(r.next(), "a row of types");
                    Object[] a = (Object[]) r.getArray("a").getArray();
                    expect(a.length == 3 && Integer.valueOf(1).equals(a[0]) && a[1] == null && Integer.valueOf(3).equals(a[2]), "int[]: " + java.util.Arrays.toString(a));
                    expect("happy".equals(r.getString("m")), "enum: " + r.getString("m"));
                    expect("(7,x)".equals(r.getString("p")), "composite: " + r.getString("p"));
                    expect("{\"k\": [1, 2]}".equals(r.getString("j")), "jsonb: " + r.getString("j"));
                    expect("{\"k\":1}".equals(r.getString("js")), "json: " + r.getString("js"));
                    expect(java.util.Arrays.equals(new byte[] {0, (byte) 0xff, 65}, r.getBytes("b")), "bytea");
                    expect(new java.math.BigDecimal("12345678901234567890.123456789").equals(r.getBigDecimal("n")), "numeric: " + r.getBigDecimal("n"));
                    expect(java.time.OffsetDateTime.parse("2024-02-29T12:34:56.789012Z").isEqual(r.getObject("t", java.time.OffsetDateTime.class)), "timestamptz: " + r.getString("t"));
                }
            }
        }
    }

    /** A transaction with a savepoint rolled back to, then an error, then the connection reused. */
    static void transactions(Connection c) throws Exception {
        c.setAutoCommit(false);
        try (Statement s = c.createStatement()) {
            s.execute("INSERT INTO " + P + "_items (id, name) VALUES (150, 'kept')");
            Savepoint sp = c.setSavepoint("sp");
            s.execute("INSERT INTO " + P + "_items (id, name) VALUES (151, 'undone')");
            c.rollback(sp);
            c.commit();
            try {
                s.executeQuery("SELECT 1 / 0");
                expect(false, "division by zero raised nothing");
            } catch (SQLException e) {
                expect("22012".equals(e.getSQLState()), "division by zero: " + e.getSQLState());
            }
            c.rollback();
            c.setAutoCommit(true);
            try (ResultSet r = s.executeQuery("SELECT string_agg(name, ',' ORDER BY id) FROM " + P + "_items WHERE id BETWEEN 150 AND 159")) {
                expect(r.next() && "kept".equals(r.getString(1)), "after the savepoint: " + r.getString(1));
            }
        }
    }

    /** COPY in, and out in text: the masked column stays masked. */
    static void copy(Connection c) throws Exception {
        org.postgresql.copy.CopyManager copy = c.unwrap(org.postgresql.PGConnection.class).getCopyAPI();
        long in = copy.copyIn("COPY " + P + "_items (id, name) FROM STDIN", new java.io.StringReader("160\tcopied a\n161\tcopied b\n"));
        expect(in == 2, "COPY in rows: " + in);
        java.io.StringWriter out = new java.io.StringWriter();
        copy.copyOut("COPY (SELECT id, name, password_hash FROM " + P + "_people ORDER BY id) TO STDOUT", out);
        String[] lines = out.toString().split("\n");
        expect(lines.length == 2 && lines[0].startsWith("1\talice\t"), "COPY out: " + out);
        masked(lines[0].split("\t")[2], "bcrypt-secret-alice", false, "COPY out password_hash");
    }

    /** A long statement cancelled from another thread ends with 57014, and the connection goes on. */
    static void cancel(Connection c) throws Exception {
        try (Statement s = c.createStatement()) {
            Thread canceller = new Thread(() -> {
                try {
                    Thread.sleep(500);
                    s.cancel();
                } catch (Exception e) {
                    expect(false, "cancel: " + e);
                }
            });
            canceller.start();
            long started = System.nanoTime();
            try {
                s.execute("SELECT pg_sleep(30)");
                expect(false, "the cancelled statement raised nothing");
            } catch (SQLException e) {
                expect("57014".equals(e.getSQLState()), "cancel: " + e.getSQLState() + " " + e.getMessage());
            }
            canceller.join();
            expect(System.nanoTime() - started < 20_000_000_000L, "the cancel took effect promptly");
            try (ResultSet r = s.executeQuery("SELECT 'after cancel'")) {
                expect(r.next() && "after cancel".equals(r.getString(1)), "after cancel");
            }
        }
    }

    /** Four threads share a pool of two connections, each statement past the prepare threshold. */
    static void pool(String url, Properties props) throws Exception {
        java.util.concurrent.BlockingQueue<Connection> pool = new java.util.concurrent.ArrayBlockingQueue<>(2);
        for (int i = 0; i < 2; i++) pool.add(DriverManager.getConnection(url, props));
        java.util.concurrent.ExecutorService threads = java.util.concurrent.Executors.newFixedThreadPool(4);
        java.util.List<java.util.concurrent.Future<Boolean>> done = new java.util.ArrayList<>();
        for (int t = 0; t < 4; t++) {
            final int thread = t;
            done.add(threads.submit(() -> {
                for (int i = 0; i < 25; i++) {
                    Connection c = pool.take();
                    try (PreparedStatement s = c.prepareStatement("SELECT ?::int * 2");
                            PreparedStatement h = c.prepareStatement("SELECT password_hash FROM " + P + "_people WHERE id = ?")) {
                        s.setInt(1, thread * 100 + i);
                        try (ResultSet r = s.executeQuery()) {
                            expect(r.next() && r.getInt(1) == (thread * 100 + i) * 2, "pooled value");
                        }
                        h.setInt(1, 2);
                        try (ResultSet r = h.executeQuery()) {
                            expect(r.next(), "a pooled row");
                            masked(r.getString(1), "bcrypt-secret-bob", false, "pooled password_hash");
                        }
                    } finally {
                        pool.put(c);
                    }
                }
                return true;
            }));
        }
        for (java.util.concurrent.Future<Boolean> f : done) {
            try {
                expect(f.get(), "a pooled thread");
            } catch (java.util.concurrent.ExecutionException e) {
                expect(false, "a pooled thread: " + e.getCause());
            }
        }
        threads.shutdown();
        for (Connection c : pool) c.close();
    }

    public static void main(String[] args) throws Exception {
        watchHolds();
        String url = "jdbc:postgresql://" + System.getenv("DRV_HOST") + ":" + System.getenv("DRV_PORT") + "/" + System.getenv("DRV_DBNAME");
        Properties props = new Properties();
        props.setProperty("user", System.getenv("DRV_USER"));
        props.setProperty("password", System.getenv("DRV_PASSWORD"));
        props.setProperty("sslmode", "verify-full");
        props.setProperty("sslrootcert", System.getenv("DRV_CA"));
        for (String binary : new String[] {"false", "true"}) {
            props.setProperty("binaryTransfer", binary);
            try (Connection c = DriverManager.getConnection(url, props)) {
                PreparedStatement n = c.prepareStatement("SELECT ?::int AS n");
                PreparedStatement p = c.prepareStatement("SELECT name, password_hash FROM " + P + "_people WHERE id = ?");
                for (int i = 0; i < 12; i++) {
                    n.setInt(1, i);
                    try (ResultSet r = n.executeQuery()) {
                        expect(r.next() && r.getInt("n") == i, "n at execution " + i + " (binary " + binary + "): " + r.getString("n"));
                    }
                    p.setInt(1, 1);
                    try (ResultSet r = p.executeQuery()) {
                        expect(r.next(), "a row at execution " + i);
                        expect("alice".equals(r.getString("name")), "name at execution " + i + ": " + r.getString("name"));
                        // pgjdbc receives text columns as text even with binaryTransfer.
                        masked(r.getString("password_hash"), "bcrypt-secret-alice", false, "password_hash at execution " + i);
                    }
                }
                PreparedStatement q = c.prepareStatement("SELECT ?::text || 'x' AS t");
                for (int i = 0; i < 12; i++) {
                    q.setString(1, "v" + i);
                    try (ResultSet r = q.executeQuery()) {
                        r.next();
                        expect(("v" + i + "x").equals(r.getString("t")), "t at execution " + i + ": " + r.getString("t"));
                    }
                }
            }
        }

        try (Connection c = DriverManager.getConnection(url, props)) {
            types(c);
            transactions(c);
            copy(c);
            cancel(c);
        }
        pool(url, props);

        try (Connection c = DriverManager.getConnection(url, props)) {
            // A batch: pgjdbc sends every execution before one Sync.
            try (PreparedStatement ins = c.prepareStatement("INSERT INTO " + P + "_items (id, name) VALUES (?, ?)")) {
                for (int i = 0; i < 50; i++) {
                    ins.setInt(1, 200 + i);
                    ins.setString(2, "batch " + i);
                    ins.addBatch();
                }
                int[] counts = ins.executeBatch();
                expect(counts.length == 50, "batch counts: " + counts.length);
            }
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT count(*), sum(id) FROM " + P + "_items WHERE id >= 200")) {
                r.next();
                expect(r.getInt(1) == 50 && r.getInt(2) == 50 * 200 + 49 * 50 / 2, "batched rows: " + r.getInt(1) + ", " + r.getInt(2));
            }

            // Held statements: one approved runs, one denied fails and changes nothing.
            Thread decider = decideLater(P + "_held_a", "approve");
            try (Statement s = c.createStatement()) {
                s.execute("DROP TABLE " + P + "_held_a");
            }
            if (AIRLOCK) decider.join();
            expect(!exists(c, P + "_held_a"), "the approved DROP dropped");
            if (AIRLOCK) {
                decider = decideLater(P + "_held_b", "deny");
                try (Statement s = c.createStatement()) {
                    s.execute("DROP TABLE " + P + "_held_b");
                    expect(false, "the denied DROP raised nothing");
                } catch (SQLException e) {
                    expect("42501".equals(e.getSQLState()) && e.getMessage().contains("denied"), "the denied DROP: " + e.getSQLState() + " " + e.getMessage());
                }
                decider.join();
                expect(exists(c, P + "_held_b"), "the denied DROP left the table");
            }
        }
        System.out.println("ok");
    }
}
