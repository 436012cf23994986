package kb.testserver;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilders;
import org.neo4j.io.ByteUnit;

/**
 * An in-process Neo4j for kb's tests: Bolt on a fixed loopback port, auth on with a fixed test
 * password, no HTTP server, no usage reports. Prints one ready line and runs until the process
 * is stopped.
 *
 * <p>Environment: KB_TEST_NEO4J_HOST (127.0.0.1), KB_TEST_NEO4J_PORT (7688),
 * KB_TEST_NEO4J_PASSWORD (kb-test-password), KB_TEST_NEO4J_WORK_DIR (a folder for the store,
 * deleted when the server stops; default target/harness).
 */
public final class TestServer {

    private TestServer() {
    }

    public static void main(String[] args) throws Exception {
        String host = env("KB_TEST_NEO4J_HOST", "127.0.0.1");
        int port = Integer.parseInt(env("KB_TEST_NEO4J_PORT", "7688"));
        String password = env("KB_TEST_NEO4J_PASSWORD", "kb-test-password");
        Path workDir = Path.of(env("KB_TEST_NEO4J_WORK_DIR", "target/harness")).toAbsolutePath();
        Files.createDirectories(workDir);

        Neo4j server = Neo4jBuilders.newInProcessBuilder(workDir)
                .withDisabledServer()
                .withConfig(BoltConnector.enabled, true)
                .withConfig(BoltConnector.listen_address, new SocketAddress(host, port))
                .withConfig(BoltConnector.advertised_address, new SocketAddress(host, port))
                .withConfig(GraphDatabaseSettings.auth_enabled, true)
                .withConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(64))
                .withConfig(GraphDatabaseSettings.udc_enabled, false)
                .build();
        setPassword(server, password);

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.close();
            stopped.countDown();
        }));
        System.out.println("kb-neo4j-test-server ready " + server.boltURI());
        System.out.flush();
        stopped.await();
    }

    /** The built-in user starts with password "neo4j" and must change it; set ours instead. */
    private static void setPassword(Neo4j server, String password) {
        server.databaseManagementService().database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME)
                .executeTransactionally(
                        "ALTER USER neo4j SET PLAINTEXT PASSWORD $password CHANGE NOT REQUIRED",
                        Map.of("password", password));
    }

    private static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }
}
