// A Java program for procmap's tests: objects of several sizes on the Java heap.
//
// It keeps references to small, medium and large objects (a large array goes
// straight to the old generation, or is a humongous object under G1), prints
// "ready", and waits until its stdin closes.  Java cannot print an object's
// address: the tests take addresses from the JVM's own report (jcmd GC.heap_info).
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

public final class Heap {
    public static void main(String[] args) throws IOException {
        List<Object> kept = new ArrayList<>();
        for (int i = 0; i < 10000; i++) {
            kept.add(new int[4]);
        }
        for (int i = 0; i < 100; i++) {
            kept.add(new byte[16 * 1024]);
        }
        kept.add(new long[4 * 1024 * 1024 / 8]);
        System.out.println("ready");
        System.out.flush();
        if (kept.isEmpty()) {
            throw new AssertionError();
        }
        while (System.in.read() >= 0) {
            // wait for stdin to close
        }
    }
}
