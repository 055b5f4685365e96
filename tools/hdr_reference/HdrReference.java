// The Java HdrHistogram (the reference implementation) behind a line protocol, for
// tools/gen_hdr_fixture.py. One command per stdin line, one answer per stdout line:
//   encode LOWEST HIGHEST DIGITS VALUE:COUNT ...   ->  base64 compressed V2 blob
//   decode BLOB                                    ->  TOTAL MIN MAX LOWEST HIGHEST DIGITS VALUE:COUNT ...
// where each VALUE:COUNT of a decode is a recorded bucket: its highest equivalent value, its count.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.util.Base64;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.HistogramIterationValue;

public final class HdrReference {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "US-ASCII"));
        StringBuilder out = new StringBuilder();
        for (String line; (line = in.readLine()) != null; ) {
            String[] w = line.trim().split(" ");
            if (w[0].equals("encode")) {
                Histogram h = new Histogram(
                        Long.parseLong(w[1]), Long.parseLong(w[2]), Integer.parseInt(w[3]));
                for (int i = 4; i < w.length; i++) {
                    String[] vc = w[i].split(":");
                    h.recordValueWithCount(Long.parseLong(vc[0]), Long.parseLong(vc[1]));
                }
                ByteBuffer buf = ByteBuffer.allocate(h.getNeededByteBufferCapacity());
                int n = h.encodeIntoCompressedByteBuffer(buf);
                byte[] blob = new byte[n];
                System.arraycopy(buf.array(), 0, blob, 0, n);
                out.append(Base64.getEncoder().encodeToString(blob));
            } else if (w[0].equals("decode")) {
                Histogram h = Histogram.decodeFromCompressedByteBuffer(
                        ByteBuffer.wrap(Base64.getDecoder().decode(w[1])), 0);
                out.append(h.getTotalCount()).append(' ').append(h.getMinValue()).append(' ')
                        .append(h.getMaxValue()).append(' ').append(h.getLowestDiscernibleValue())
                        .append(' ').append(h.getHighestTrackableValue()).append(' ')
                        .append(h.getNumberOfSignificantValueDigits());
                for (HistogramIterationValue v : h.recordedValues()) {
                    out.append(' ').append(v.getValueIteratedTo()).append(':')
                            .append(v.getCountAtValueIteratedTo());
                }
            } else {
                throw new IllegalArgumentException("unknown command: " + w[0]);
            }
            out.append('\n');
        }
        System.out.print(out);
    }
}
