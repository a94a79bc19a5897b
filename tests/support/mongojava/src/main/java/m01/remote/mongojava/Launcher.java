package m01.remote.mongojava;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.util.List;

import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import org.h2.mvstore.MVStore;

/**
 * Runs one mongo-java-server for tests until SIGTERM, SIGINT or, with
 * --exit-on-eof, the end of standard input (its parent went away).
 *
 * Prints "listening HOST:PORT" on standard output once it accepts
 * connections, so that --port 0 (a free port) can be used without a race;
 * "stopped" once a shutdown closed the store. Errors and the server's
 * warnings go to standard error.
 */
public final class Launcher {

    /**
     * The version the server reports. mongo-java-server says "5.0" with
     * wire version 8 (MongoDB 4.2's), and pymongo 4.x refuses a server
     * below its minimum wire version (9, MongoDB 4.4, in pymongo 4.20; it
     * rises with later releases). MongoDB 7.0 (wire 21) is inside the
     * range of every current pymongo with room to spare. Reporting more
     * than the server implements does not make pymongo send commands it
     * lacks: pymongo's wire-version checks only guard features a caller
     * asks for (snapshot reads, client bulk writes), and it refuses
     * transactions itself, as the server announces no
     * logicalSessionTimeoutMinutes.
     */
    static final MongoVersion REPORTED_VERSION = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(7, 0, 0);
        }

        @Override
        public int getWireVersion() {
            return 21;
        }
    };

    /**
     * Milliseconds between the H2 store's background commits: what a
     * crash (SIGKILL) can lose. MongoDB's journal commits every 100 ms by
     * default; H2's own default, a second, would make a crash lose ten
     * times more than on the server a test stands in for.
     */
    static final int H2_COMMIT_DELAY_MS = 100;

    private static final String USAGE = String.join("\n",
        "usage: java -jar m01-mongojava.jar [options]",
        "  --host HOST        address to listen on (127.0.0.1)",
        "  --port PORT        port to listen on; 0 picks a free one (0)",
        "  --backend memory|h2  where the data lives (memory)",
        "  --h2-file PATH     the H2 store's file (required with h2); its",
        "                     data is kept across restarts",
        "  --oplog            keep an oplog, for change streams",
        "  --log-level LEVEL  error, warn, info or debug (warn)",
        "  --exit-on-eof      stop when standard input closes");

    private Launcher() {
    }

    public static void main(String[] args) {
        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
            return;
        }
        if (options.help) {
            System.out.println(USAGE);
            return;
        }
        // Before the first logger is made: slf4j-simple reads these once.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel",
                           options.logLevel);
        System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");
        System.setProperty("org.slf4j.simpleLogger.dateTimeFormat",
                           "HH:mm:ss.SSS");
        System.setProperty("org.slf4j.simpleLogger.showShortLogName",
                           "true");
        if (options.logLevel.equals("warn")
                || options.logLevel.equals("error")) {
            // This logger logs every command that fails, a duplicate key
            // as much as a server bug, at ERROR with its stack trace. The
            // client gets the same message as its answer; a queue's test
            // run, where refused duplicates are routine, would get pages
            // of traces.
            System.setProperty("org.slf4j.simpleLogger.log."
                + "de.bwaldvogel.mongo.wire.MongoWireProtocolHandler", "off");
        }
        try {
            run(options);
        } catch (RuntimeException e) {
            System.err.println("error: " + describe(e));
            e.printStackTrace();
            System.exit(1);
        }
    }

    private static void run(Options options) {
        MongoBackend backend = options.h2File == null
            ? new MemoryBackend() : new H2Backend(openH2Store(options.h2File));
        backend.version(REPORTED_VERSION);
        MongoServer server = new MongoServer(backend);
        if (options.oplog) {
            server.enableOplog();
        }
        try {
            server.bind(options.host, options.port);
        } catch (RuntimeException e) {
            // bind() has shut the server down, which closed the H2 store.
            throw new IllegalStateException(
                "cannot listen on " + options.host + ":" + options.port
                + ": " + describe(e), e);
        }
        // The JVM runs this on SIGTERM, SIGINT and System.exit: closing the
        // backend commits the H2 store, so no acknowledged write is lost.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();
            System.out.println("stopped");
            System.out.flush();
        }, "m01-mongojava-shutdown"));
        InetSocketAddress address = server.getLocalAddress();
        System.out.println("listening " + address.getHostString() + ":"
                           + address.getPort());
        System.out.flush();
        if (options.exitOnEof) {
            Thread watcher = new Thread(() -> {
                waitForEof(System.in);
                System.exit(0);
            }, "m01-mongojava-stdin");
            watcher.setDaemon(true);
            watcher.start();
        }
        // main returns; netty's non-daemon threads keep the JVM running.
    }

    private static MVStore openH2Store(String fileName) {
        MVStore store = MVStore.open(fileName);
        store.setAutoCommitDelay(H2_COMMIT_DELAY_MS);
        return store;
    }

    private static void waitForEof(InputStream in) {
        byte[] buffer = new byte[256];
        try {
            while (in.read(buffer) != -1) {
                // Input is ignored; only its end matters.
            }
        } catch (IOException e) {
            // A broken pipe is an end too.
        }
    }

    private static String describe(Throwable e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String message = root.getMessage();
        return root.getClass().getSimpleName()
            + (message == null ? "" : ": " + message);
    }

    static final class Options {
        String host = "127.0.0.1";
        int port = 0;
        String h2File;
        boolean oplog;
        boolean exitOnEof;
        boolean help;
        String logLevel = "warn";

        static Options parse(String[] args) {
            Options options = new Options();
            String backend = "memory";
            for (int i = 0; i < args.length; i++) {
                String arg = args[i];
                switch (arg) {
                    case "--host" -> options.host = value(args, ++i, arg);
                    case "--port" -> options.port = port(value(args, ++i, arg));
                    case "--backend" -> backend = value(args, ++i, arg);
                    case "--h2-file" -> options.h2File = value(args, ++i, arg);
                    case "--oplog" -> options.oplog = true;
                    case "--exit-on-eof" -> options.exitOnEof = true;
                    case "--log-level" -> options.logLevel = level(
                        value(args, ++i, arg));
                    case "--help", "-h" -> options.help = true;
                    default -> throw new IllegalArgumentException(
                        "unknown option " + arg);
                }
            }
            switch (backend) {
                case "memory" -> {
                    if (options.h2File != null) {
                        throw new IllegalArgumentException(
                            "--h2-file needs --backend h2");
                    }
                }
                case "h2" -> {
                    if (options.h2File == null) {
                        throw new IllegalArgumentException(
                            "--backend h2 needs --h2-file PATH");
                    }
                }
                default -> throw new IllegalArgumentException(
                    "--backend is memory or h2, not " + backend);
            }
            return options;
        }

        private static String value(String[] args, int i, String option) {
            if (i >= args.length) {
                throw new IllegalArgumentException(option + " needs a value");
            }
            return args[i];
        }

        private static int port(String value) {
            try {
                int port = Integer.parseInt(value);
                if (port >= 0 && port <= 65535) {
                    return port;
                }
            } catch (NumberFormatException e) {
                // reported below
            }
            throw new IllegalArgumentException("--port " + value
                                               + " is not a port number");
        }

        private static String level(String value) {
            return switch (value) {
                case "error", "warn", "info", "debug" -> value;
                default -> throw new IllegalArgumentException(
                    "--log-level is error, warn, info or debug, not "
                    + value);
            };
        }
    }
}
