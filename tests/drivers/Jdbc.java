// pgjdbc: statements reused past the driver's prepare threshold (where it switches
// to named server-side statements) keep their values, and masked columns stay masked,
// in text and binary transfer; a batch; a held DROP approved and another denied.
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
