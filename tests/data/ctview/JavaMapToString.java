// Oracle for ctview's Java-map renderings (aws.cloudtrail.request_parameters & co.).
// Reads one JSON value per line from stdin and prints, per line, a JSON string holding
// what Elasticsearch's ingest pipeline would store: the value parsed the way ES parses
// JSON (HashMap, ArrayList, Integer/Long, Double, Boolean, String), cleaned in place of
// null, "", "-", "none" and containers left empty (bottom-up), then Object.toString().
// A value that is empty after cleaning prints as null.
// Run: java JavaMapToString.java < cases.jsonl
import java.io.*;
import java.util.*;

public class JavaMapToString {
    static String s; static int i;
    static Object parse() {
        ws();
        char c = s.charAt(i);
        if (c == '{') {
            i++; Map<String, Object> m = new HashMap<>(); ws();
            if (s.charAt(i) == '}') { i++; return m; }
            for (;;) { ws(); String k = str(); ws(); i++; /* : */ m.put(k, parse()); ws();
                if (s.charAt(i++) == '}') return m; }
        }
        if (c == '[') {
            i++; List<Object> l = new ArrayList<>(); ws();
            if (s.charAt(i) == ']') { i++; return l; }
            for (;;) { l.add(parse()); ws(); if (s.charAt(i++) == ']') return l; }
        }
        if (c == '"') return str();
        if (s.startsWith("true", i)) { i += 4; return Boolean.TRUE; }
        if (s.startsWith("false", i)) { i += 5; return Boolean.FALSE; }
        if (s.startsWith("null", i)) { i += 4; return null; }
        int st = i;
        while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
        String num = s.substring(st, i);
        if (num.contains(".") || num.contains("e") || num.contains("E")) return Double.parseDouble(num);
        long v = Long.parseLong(num);
        if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) return (int) v;
        return v;
    }
    static void ws() { while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++; }
    static String str() {
        StringBuilder b = new StringBuilder(); i++;
        for (;;) {
            char c = s.charAt(i++);
            if (c == '"') return b.toString();
            if (c == '\\') {
                char e = s.charAt(i++);
                switch (e) {
                case 'n': b.append('\n'); break; case 't': b.append('\t'); break;
                case 'r': b.append('\r'); break; case 'b': b.append('\b'); break;
                case 'f': b.append('\f'); break;
                case 'u': b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; break;
                default: b.append(e);
                }
            } else b.append(c);
        }
    }
    static boolean empty(Object v) {
        if (v == null) return true;
        if (v instanceof String) { String t = (String) v; return t.isEmpty() || t.equals("-") || t.equals("none"); }
        if (v instanceof Map) { ((Map<?, ?>) v).values().removeIf(JavaMapToString::empty); return ((Map<?, ?>) v).isEmpty(); }
        if (v instanceof List) { ((List<?>) v).removeIf(JavaMapToString::empty); return ((List<?>) v).isEmpty(); }
        return false;
    }
    static String quote(String t) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : t.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }
    public static void main(String[] a) throws IOException {
        BufferedReader r = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        for (String line; (line = r.readLine()) != null;) {
            if (line.isBlank()) continue;
            s = line; i = 0;
            Object v = parse();
            out.println(empty(v) ? "null" : quote(v.toString()));
        }
    }
}
