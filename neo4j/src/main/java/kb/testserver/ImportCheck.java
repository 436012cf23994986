package kb.testserver;

import java.io.PrintStream;
import java.lang.reflect.Array;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.neo4j.cli.AdminTool;
import org.neo4j.cli.ExecutionContext;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.graphdb.Result;
import org.neo4j.graphdb.Transaction;
import org.neo4j.io.ByteUnit;
import org.neo4j.io.fs.DefaultFileSystemAbstraction;

/**
 * Checks kb's bulk-import files with the real importer: runs `neo4j-admin` with the given
 * arguments into a fresh home folder, opens the imported database, and prints every node and
 * relationship as one JSON object a line on stdout (the importer's own output goes to stderr).
 *
 * <p>Usage: ImportCheck HOME database import full DATABASE [options]
 */
public final class ImportCheck {

    private ImportCheck() {
    }

    public static void main(String[] args) throws Exception {
        Path home = Path.of(args[0]).toAbsolutePath();
        String[] command = Arrays.copyOfRange(args, 1, args.length);
        String database = command[3];
        Files.createDirectories(home.resolve("conf"));

        int status = AdminTool.execute(new ExecutionContext(home, home.resolve("conf"),
                System.err, System.err, new DefaultFileSystemAbstraction()), command);
        if (status != 0) {
            System.exit(status);
        }
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(32))
                .setConfig(GraphDatabaseSettings.udc_enabled, false)
                .setConfig(BoltConnector.enabled, false)
                .build();
        try {
            dump(dbms.database(database), out);
        } finally {
            dbms.shutdown();
        }
    }

    private static void dump(GraphDatabaseService db, PrintStream out) {
        try (Transaction tx = db.beginTx()) {
            print(tx.execute("MATCH (n) RETURN elementId(n) AS node, labels(n) AS labels, "
                    + "properties(n) AS props"), out);
            print(tx.execute("MATCH (a)-[r]->(b) RETURN type(r) AS rel, elementId(a) AS from, "
                    + "elementId(b) AS to, properties(r) AS props"), out);
            tx.commit();
        }
    }

    private static void print(Result result, PrintStream out) {
        while (result.hasNext()) {
            out.println(json(new TreeMap<>(result.next())));
        }
    }

    /** Just enough JSON for property values: text, numbers, booleans, arrays, lists, maps. */
    private static String json(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof String text) {
            return quote(text);
        }
        if (value instanceof Number || value instanceof Boolean) {
            return value.toString();
        }
        if (value instanceof Map<?, ?> map) {
            StringBuilder text = new StringBuilder("{");
            for (Map.Entry<?, ?> entry : new TreeMap<>(map).entrySet()) {
                text.append(text.length() > 1 ? "," : "").append(quote(entry.getKey().toString()))
                        .append(':').append(json(entry.getValue()));
            }
            return text.append('}').toString();
        }
        if (value instanceof List<?> list) {
            return json(list.toArray());
        }
        if (value.getClass().isArray()) {
            StringBuilder text = new StringBuilder("[");
            for (int i = 0; i < Array.getLength(value); i++) {
                text.append(i > 0 ? "," : "").append(json(Array.get(value, i)));
            }
            return text.append(']').toString();
        }
        return quote(value.toString());
    }

    private static String quote(String text) {
        StringBuilder quoted = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            if (c == '"' || c == '\\') {
                quoted.append('\\').append(c);
            } else if (c < 0x20) {
                quoted.append(String.format("\\u%04x", (int) c));
            } else {
                quoted.append(c);
            }
        }
        return quoted.append('"').toString();
    }
}
