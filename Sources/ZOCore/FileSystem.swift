#if canImport(Glibc)
import Glibc
#endif

/// Small file-system and text helpers on POSIX calls, so that the libraries need only
/// FoundationEssentials (full Foundation would add ~50 MB to a static binary).
public enum FileSystem {
    /// What is at `path`: nil when nothing, else whether it is a folder (symbolic links
    /// followed).
    public static func isFolder(_ path: String) -> Bool? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// The names in a folder (without "." and ".."), or [] when it cannot be read.
    public static func names(in path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    /// Creates `path` and any missing parents (as `mkdir -p`); false when it is not a folder after.
    @discardableResult
    public static func makeFolders(_ path: String) -> Bool {
        if isFolder(path) == true { return true }
        let parent = parent(of: path)
        if !parent.isEmpty, parent != path { makeFolders(parent) }
        mkdir(path, 0o755)
        return isFolder(path) == true
    }

    /// `path` without its last component ("" for a bare name).
    public static func parent(of path: String) -> String {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }
}

/// Text formatting without Foundation.
public enum TextFormat {
    /// Lower-case hexadecimal digits of `bytes`.
    public static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }

    /// `value` rounded to `decimals` digits after the point (0…6), e.g. "12.35".
    public static func decimal(_ value: Double, decimals: Int) -> String {
        precondition((0...6).contains(decimals))
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = Int(scaled / scale), fraction = Int(scaled.truncatingRemainder(dividingBy: scale))
        let digits = String(fraction)
        let sign = value < 0 && scaled != 0 ? "-" : ""
        return decimals == 0 ? sign + "\(whole)" : sign + "\(whole)." + String(repeating: "0", count: decimals - digits.count) + digits
    }

    /// `value` with two significant decimals and an exponent, e.g. "3.14e-07" (0 as "0").
    public static func scientific(_ value: Double) -> String {
        guard value.isFinite, value != 0 else { return value == 0 ? "0" : "\(value)" }
        var exponent = Int((log10(abs(value))).rounded(.down))
        var mantissa = value / pow(10, Double(exponent))
        if abs(mantissa) >= 9.995 { mantissa /= 10; exponent += 1 }
        let sign = exponent < 0 ? "-" : "+"
        let digits = String(abs(exponent))
        return decimal(mantissa, decimals: 2) + "e" + sign + (digits.count < 2 ? "0" : "") + digits
    }

    /// `text` without leading and trailing spaces and tabs.
    public static func trimmed<S: StringProtocol>(_ text: S) -> String {
        String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
