extension String {
    /// The UTF-8 text of a NUL-terminated C character buffer (invalid bytes become U+FFFD).
    public init(nulTerminated buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
