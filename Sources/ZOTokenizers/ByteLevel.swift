/// GPT-2's reversible map between bytes and printable Unicode characters: printable Latin-1
/// bytes map to themselves, the other 68 bytes to U+0100 and up, in order. Byte-level BPE
/// vocabularies are written in these characters ("Ġ" is the space byte).
enum ByteLevel {
    /// Character for each byte value.
    static let byteToCharacter: [Character] = {
        let printable = Array(33...126) + Array(161...172) + Array(174...255)
        var table = [Character](repeating: " ", count: 256)
        var next = 256
        for byte in 0..<256 {
            if printable.contains(byte) {
                table[byte] = Character(Unicode.Scalar(UInt8(byte)))
            } else {
                table[byte] = Character(Unicode.Scalar(UInt32(next))!)
                next += 1
            }
        }
        return table
    }()

    /// Byte for each mapped character.
    static let characterToByte: [Character: UInt8] = {
        var inverse: [Character: UInt8] = [:]
        for (byte, character) in byteToCharacter.enumerated() { inverse[character] = UInt8(byte) }
        return inverse
    }()

    /// The UTF-8 bytes of each byte's mapped character.
    private static let byteToSymbol: [[UInt8]] = byteToCharacter.map { Array(String($0).utf8) }

    /// The mapped characters of `text`'s UTF-8 bytes, one symbol (its UTF-8 bytes) per byte.
    static func symbols(_ text: Substring) -> [[UInt8]] {
        text.utf8.map { byteToSymbol[Int($0)] }
    }

    /// Bytes of a vocabulary string: mapped characters become their byte; anything else
    /// (special tokens written in plain text) contributes its UTF-8.
    static func bytes(_ token: String) -> [UInt8] {
        var result: [UInt8] = []
        for character in token {
            if let byte = characterToByte[character] { result.append(byte) } else { result += Array(String(character).utf8) }
        }
        return result
    }
}
