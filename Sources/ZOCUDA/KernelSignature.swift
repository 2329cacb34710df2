import ZOCore

/// A value a kernel takes: its C type in the kernel's parameter list, and its bytes in a
/// launch's parameter buffer (the layout the compiled kernel reads).
public protocol KernelArgument {
    /// The C type of the parameter ("const float *", "int", "zo_terms", …).
    static var cType: String { get }
    /// Appends the value's bytes (device addresses resolved through `packer`).
    func pack(into packer: inout KernelPacker)
}

/// Element types a device pointer argument may point to.
public protocol KernelElement {
    static var cType: String { get }
}

extension Float: KernelElement {}
extension Int32: KernelElement {}
extension UInt8: KernelElement {}

/// Untyped device bytes (`void *`).
public enum DeviceBytes: KernelElement {
    public static var cType: String { "void" }
}

/// A device buffer the kernel only reads: `const T *` (a nil buffer is a null pointer).
public struct In<Element: KernelElement>: KernelArgument {
    public let buffer: DeviceBuffer?
    public init(_ buffer: DeviceBuffer?) { self.buffer = buffer }
    public static var cType: String { "const \(Element.cType) *" }
    public func pack(into packer: inout KernelPacker) { packer.append(packer.address(buffer)) }
}

/// A device buffer the kernel writes (and may read): `T *`.
public struct Out<Element: KernelElement>: KernelArgument {
    public let buffer: DeviceBuffer?
    public init(_ buffer: DeviceBuffer?) { self.buffer = buffer }
    public static var cType: String { "\(Element.cType) *" }
    public func pack(into packer: inout KernelPacker) { packer.append(packer.address(buffer)) }
}

/// A scalar passed by value: its bytes as they are.
public protocol KernelScalar: KernelArgument, BitwiseCopyable {}

extension KernelScalar {
    public func pack(into packer: inout KernelPacker) { packer.append(self) }
}

extension Float: KernelScalar { public static var cType: String { "float" } }
extension Int32: KernelScalar { public static var cType: String { "int" } }
extension UInt32: KernelScalar { public static var cType: String { "u32" } }
extension UInt64: KernelScalar { public static var cType: String { "u64" } }
extension UInt8: KernelScalar { public static var cType: String { "unsigned char" } }

/// Up to `capacity` perturbation terms passed by value (`zo_terms`: the terms, then their count).
public struct KernelTerms: KernelArgument {
    /// The most terms one launch carries; a pass with more is split into launches.
    public static let capacity = 32
    public let terms: ArraySlice<PerturbationTerm>

    public init(_ terms: ArraySlice<PerturbationTerm>) {
        precondition(terms.count <= Self.capacity, "more than \(Self.capacity) terms in one launch")
        self.terms = terms
    }

    public static var cType: String { "zo_terms" }

    /// The C declaration of `zo_terms` (and of one term), for kernel sources.
    public static var declaration: String {
        """
        struct zo_term { u64 seed; float coefficient; float decay_coefficient; };
        struct zo_terms { zo_term term[\(capacity)]; int count; };
        """
    }

    public func pack(into packer: inout KernelPacker) {
        var bytes = [UInt8](repeating: 0, count: Self.capacity * 16 + 8)
        func store<T: BitwiseCopyable>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value) { bytes.replaceSubrange(offset..<offset + $0.count, with: $0) }
        }
        for (index, term) in terms.enumerated() {
            store(term.seed, at: 16 * index)
            store(term.coefficient, at: 16 * index + 8)
            store(term.decayCoefficient, at: 16 * index + 12)
        }
        store(Int32(terms.count), at: 16 * Self.capacity)
        packer.append(bytes: bytes, alignment: 8)
    }
}

/// A launch's parameter values, each at its C alignment, and where each starts.
public struct KernelPacker {
    public private(set) var bytes: [UInt8] = []
    public private(set) var starts: [Int] = []
    /// Device address of a buffer (0 for nil).
    public let address: (DeviceBuffer?) -> UInt64

    public init(address: @escaping (DeviceBuffer?) -> UInt64) { self.address = address }

    /// Appends one parameter's bytes at `alignment`.
    public mutating func append(bytes value: [UInt8], alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
        starts.append(bytes.count)
        bytes += value
    }

    public mutating func append<T: BitwiseCopyable>(_ value: T) {
        append(bytes: withUnsafeBytes(of: value, Array.init), alignment: MemoryLayout<T>.alignment)
    }
}

/// A kernel's name and parameter list, declared once: `declaration` is the C signature its
/// source is written with, and `packed` lays out a launch's arguments of exactly those types.
public struct KernelSignature<each Argument: KernelArgument>: Sendable {
    public let name: String
    public let parameterNames: [String]

    public init(_ name: String, _ parameterNames: String...) {
        var count = 0
        for _ in repeat (each Argument).self { count += 1 }
        precondition(count == parameterNames.count, "\(name): \(parameterNames.count) names for \(count) parameters")
        self.name = name
        self.parameterNames = parameterNames
    }

    /// `extern "C" __global__ void name(type name, …)`.
    public var declaration: String {
        var types: [String] = []
        for type in repeat (each Argument).self { types.append(type.cType) }
        let parameters = zip(types, parameterNames).map { type, name in type.hasSuffix("*") ? type + name : type + " " + name }
        return "extern \"C\" __global__ void \(name)(\(parameters.joined(separator: ", ")))"
    }

    /// The launch's parameter buffer for these arguments.
    public func packed(_ arguments: repeat each Argument, address: @escaping (DeviceBuffer?) -> UInt64) -> KernelPacker {
        var packer = KernelPacker(address: address)
        for argument in repeat each arguments { argument.pack(into: &packer) }
        return packer
    }
}
