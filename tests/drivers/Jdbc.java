// pgjdbc through Airlock: statements reused past the driver's prepare threshold
// (where it switches to named server-side statements) keep their values, and masked
// columns stay masked, in text and binary transfer. Exits non-zero on the first wrong
// value, naming it.
import java.sql.*;
import java.util.Properties;

public class Jdbc {
    static void expect(boolean ok, String what) {
        if (!ok) {
            System.err.println("WRONG: " + what);
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        Properties props = new Properties();
        props.setProperty("user", "agent");
        props.setProperty("password", args[1]);
        props.setProperty("sslmode", "require");
        for (String binary : new String[] {"false", "true"}) {
            props.setProperty("binaryTransfer", binary);
            try (Connection c = DriverManager.getConnection(url, props)) {
                PreparedStatement n = c.prepareStatement("SELECT ?::int AS n");
                PreparedStatement p = c.prepareStatement("SELECT name, password_hash FROM drv_people WHERE id = ?");
                for (int i = 0; i < 12; i++) {
                    n.setInt(1, i);
                    try (ResultSet r = n.executeQuery()) {
                        expect(r.next() && r.getInt("n") == i, "n at execution " + i + " (binary " + binary + "): " + r.getString("n"));
                    }
                    p.setInt(1, 1);
                    try (ResultSet r = p.executeQuery()) {
                        expect(r.next(), "a row at execution " + i);
                        expect("alice".equals(r.getString("name")), "name at execution " + i + ": " + r.getString("name"));
                        String hash = r.getString("password_hash");
                        expect(hash == null || !hash.contains("bcrypt-secret"), "password_hash unmasked: " + hash);
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
        System.out.println("ok");
    }
}
