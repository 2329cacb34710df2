import Foundation

/// libFuzzer's entry points. One binary holds every target; `ZOTUNE_FUZZ_TARGET` names the one
/// a run exercises (`scripts/fuzz.sh` sets it). A target returns normally for any input, parsed
/// or refused with a typed error; a crash, a sanitizer report, a hang or a runaway allocation is
/// what libFuzzer reports.

/// The target chosen at initialization (read only after it, by libFuzzer's one thread).
nonisolated(unsafe) private var selected: FuzzTarget?

/// `ZOTUNE_FUZZ_TARGET=list` prints the targets' names, one a line, and exits.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>,
                       _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    let name = ProcessInfo.processInfo.environment["ZOTUNE_FUZZ_TARGET"] ?? ""
    if name == "list" {
        print(FuzzTarget.all.map(\.name).joined(separator: "\n"))
        exit(0)
    }
    guard let target = FuzzTarget.all.first(where: { $0.name == name }) else {
        let names = FuzzTarget.all.map(\.name).joined(separator: ", ")
        FileHandle.standardError.write(Data("ZOTUNE_FUZZ_TARGET must name a target (\(names)); it is '\(name)'\n".utf8))
        exit(2)
    }
    selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    selected?.run(input)
    return 0
}
