// A small JSON reader and writer: the module talks JSON with the native library and nothing else, and a
// package (System.Text.Json, Newtonsoft) would have to be shipped beside the module and could clash with
// the version the PowerShell host already loaded.
//
// Reading gives Dictionary<string, object?> (objects), List<object?> (arrays), string, long or double
// (numbers), bool and null. Writing takes the same shapes plus the integer types and enums.

using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace RemoteItP2P.Internal
{
    /// <summary>Parses and writes JSON text.</summary>
    public static class Json
    {
        /// <summary>Parses one JSON value; throws FormatException naming the offset on malformed input.</summary>
        public static object? Parse(string text)
        {
            if (text == null) throw new ArgumentNullException(nameof(text));
            var reader = new Reader(text);
            reader.SkipSpace();
            object? value = reader.ReadValue();
            reader.SkipSpace();
            if (!reader.AtEnd) throw reader.Error("unexpected text after the value");
            return value;
        }

        /// <summary>Writes a value as compact JSON.</summary>
        public static string Write(object? value)
        {
            var sb = new StringBuilder();
            WriteValue(sb, value);
            return sb.ToString();
        }

        private static void WriteValue(StringBuilder sb, object? value)
        {
            switch (value)
            {
                case null: sb.Append("null"); return;
                case string s: WriteString(sb, s); return;
                case bool b: sb.Append(b ? "true" : "false"); return;
                case Enum e: WriteString(sb, e.ToString()); return;
                case double d: sb.Append(d.ToString("R", CultureInfo.InvariantCulture)); return;
                case float f: sb.Append(f.ToString("R", CultureInfo.InvariantCulture)); return;
                case IDictionary dict:
                    sb.Append('{');
                    bool first = true;
                    foreach (DictionaryEntry entry in dict)
                    {
                        if (!first) sb.Append(',');
                        first = false;
                        WriteString(sb, Convert.ToString(entry.Key, CultureInfo.InvariantCulture));
                        sb.Append(':');
                        WriteValue(sb, entry.Value);
                    }
                    sb.Append('}');
                    return;
                case IEnumerable list:
                    sb.Append('[');
                    bool firstItem = true;
                    foreach (object item in list)
                    {
                        if (!firstItem) sb.Append(',');
                        firstItem = false;
                        WriteValue(sb, item);
                    }
                    sb.Append(']');
                    return;
                case IFormattable number:
                    sb.Append(number.ToString(null, CultureInfo.InvariantCulture));
                    return;
                default:
                    WriteString(sb, value.ToString());
                    return;
            }
        }

        private static void WriteString(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }

        private sealed class Reader
        {
            private readonly string _s;
            private int _i;
            private int _depth;
            private const int MaxDepth = 64;

            public Reader(string s) { _s = s; }

            public bool AtEnd => _i >= _s.Length;

            public FormatException Error(string what) =>
                new FormatException("Invalid JSON from the native library at offset " + _i + ": " + what);

            public void SkipSpace()
            {
                while (_i < _s.Length && (_s[_i] == ' ' || _s[_i] == '\t' || _s[_i] == '\n' || _s[_i] == '\r')) _i++;
            }

            private char Peek() => _i < _s.Length ? _s[_i] : '\0';

            private void Expect(string word)
            {
                if (string.CompareOrdinal(_s, _i, word, 0, word.Length) != 0) throw Error("expected " + word);
                _i += word.Length;
            }

            public object? ReadValue()
            {
                SkipSpace();
                char c = Peek();
                switch (c)
                {
                    case '{': return ReadObject();
                    case '[': return ReadArray();
                    case '"': return ReadString();
                    case 't': Expect("true"); return true;
                    case 'f': Expect("false"); return false;
                    case 'n': Expect("null"); return null;
                    default:
                        if (c == '-' || (c >= '0' && c <= '9')) return ReadNumber();
                        throw Error(AtEnd ? "unexpected end" : "unexpected character '" + c + "'");
                }
            }

            private Dictionary<string, object?> ReadObject()
            {
                if (++_depth > MaxDepth) throw Error("nested too deeply");
                var result = new Dictionary<string, object?>(StringComparer.Ordinal);
                _i++; // {
                SkipSpace();
                if (Peek() == '}') { _i++; _depth--; return result; }
                while (true)
                {
                    SkipSpace();
                    if (Peek() != '"') throw Error("expected a property name");
                    string key = ReadString();
                    SkipSpace();
                    if (Peek() != ':') throw Error("expected ':'");
                    _i++;
                    result[key] = ReadValue();
                    SkipSpace();
                    char c = Peek();
                    _i++;
                    if (c == ',') continue;
                    if (c == '}') break;
                    throw Error("expected ',' or '}'");
                }
                _depth--;
                return result;
            }

            private List<object?> ReadArray()
            {
                if (++_depth > MaxDepth) throw Error("nested too deeply");
                var result = new List<object?>();
                _i++; // [
                SkipSpace();
                if (Peek() == ']') { _i++; _depth--; return result; }
                while (true)
                {
                    result.Add(ReadValue());
                    SkipSpace();
                    char c = Peek();
                    _i++;
                    if (c == ',') continue;
                    if (c == ']') break;
                    throw Error("expected ',' or ']'");
                }
                _depth--;
                return result;
            }

            private string ReadString()
            {
                _i++; // opening quote
                var sb = new StringBuilder();
                while (true)
                {
                    if (AtEnd) throw Error("unterminated string");
                    char c = _s[_i++];
                    if (c == '"') return sb.ToString();
                    if (c != '\\') { sb.Append(c); continue; }
                    if (AtEnd) throw Error("unterminated escape");
                    char e = _s[_i++];
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            if (_i + 4 > _s.Length) throw Error("short \\u escape");
                            sb.Append((char)int.Parse(_s.Substring(_i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                            _i += 4;
                            break;
                        default: throw Error("unknown escape '\\" + e + "'");
                    }
                }
            }

            private object ReadNumber()
            {
                int start = _i;
                bool isFloat = false;
                while (_i < _s.Length)
                {
                    char c = _s[_i];
                    if (c >= '0' && c <= '9' || c == '-' || c == '+') { _i++; continue; }
                    if (c == '.' || c == 'e' || c == 'E') { isFloat = true; _i++; continue; }
                    break;
                }
                string text = _s.Substring(start, _i - start);
                if (!isFloat && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long l)) return l;
                if (!isFloat && ulong.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong ul)) return ul;
                if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d)) return d;
                throw Error("invalid number '" + text + "'");
            }
        }
    }

    /// <summary>Typed access to a parsed JSON object; missing keys and nulls read as null / default.</summary>
    public sealed class JsonObject
    {
        private readonly Dictionary<string, object?> _map;

        public JsonObject(object? parsed)
        {
            _map = parsed as Dictionary<string, object?>
                   ?? throw new FormatException("Expected a JSON object from the native library.");
        }

        public static JsonObject ParseObject(string text) => new JsonObject(Json.Parse(text));

        public static List<JsonObject> ParseArray(string text)
        {
            var list = Json.Parse(text) as List<object?> ?? throw new FormatException("Expected a JSON array from the native library.");
            return list.ConvertAll(o => new JsonObject(o));
        }

        public IEnumerable<string> Keys => _map.Keys;

        public object? Raw(string key) => _map.TryGetValue(key, out object? v) ? v : null;

        public string? String(string key) => Raw(key) is object v ? Convert.ToString(v, CultureInfo.InvariantCulture) : null;

        public long Long(string key) => Raw(key) is object v ? Convert.ToInt64(v, CultureInfo.InvariantCulture) : 0;

        public ulong ULong(string key) => Raw(key) is object v ? Convert.ToUInt64(v, CultureInfo.InvariantCulture) : 0;

        public long? NullableLong(string key) => Raw(key) is object v ? Convert.ToInt64(v, CultureInfo.InvariantCulture) : (long?)null;

        public double? NullableDouble(string key) => Raw(key) is object v ? Convert.ToDouble(v, CultureInfo.InvariantCulture) : (double?)null;

        public bool Bool(string key) => Raw(key) is bool b && b;

        public JsonObject? Object(string key) => Raw(key) is Dictionary<string, object?> d ? new JsonObject(d) : null;

        public List<object?> Array(string key) => Raw(key) as List<object?> ?? new List<object?>();

        public DateTime? Time(string key)
        {
            string? s = String(key);
            if (string.IsNullOrEmpty(s)) return null;
            return DateTime.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out DateTime t)
                ? t.ToLocalTime()
                : (DateTime?)null;
        }
    }
}
