import ZOCore

/// What a parameter tensor is, which decides rules such as weight decay (skipped for biases
/// and norms, as in MeZO).
public enum ParameterKind: String, Sendable {
    case matrix, embedding, bias, norm
}

/// One tensor inside a parameter group's contiguous buffer.
public struct ParameterSpec: Sendable, Equatable {
    /// The Hugging Face name (`model.decoder.layers.3.fc1.weight`).
    public let name: String
    public let shape: [Int]
    /// Element offset within the group's buffer.
    public let offset: Int
    public let kind: ParameterKind

    public var count: Int { shape.reduce(1, *) }
}

/// The offset table of a parameter group: tensors packed back to back, in declaration order,
/// into one Float32 buffer (the llm.c way). Moving a group is one copy; perturbing it is one
/// pass over one range.
public struct ParameterLayout: Sendable, Equatable {
    public private(set) var specs: [ParameterSpec] = []
    /// Total Float32 elements.
    public private(set) var count = 0

    public init() {}

    /// Appends a tensor and returns its element offset.
    @discardableResult
    public mutating func add(_ name: String, _ shape: [Int], _ kind: ParameterKind) -> Int {
        let spec = ParameterSpec(name: name, shape: shape, offset: count, kind: kind)
        specs.append(spec)
        count += spec.count
        return spec.offset
    }

    /// The tensor called `name`, or nil.
    public func spec(_ name: String) -> ParameterSpec? { specs.first { $0.name == name } }

    /// Bytes of the buffer in fp32.
    public var byteCount: Int { count * 4 }
}

/// A stage or block of a model: its layout and its fp32 master copy in host memory.
///
/// The group owns `storage`; device copies are made by whoever runs the model.
public final class ParameterGroup: Sendable {
    /// "embedding", "block 3", "head".
    public let label: String
    public let layout: ParameterLayout
    public let storage: HostBuffer

    public init(label: String, layout: ParameterLayout, storage: HostStorage = .memory) throws(HostMemoryError) {
        self.label = label
        self.layout = layout
        self.storage = try HostBuffer(byteCount: layout.byteCount, in: storage)
    }

    /// Allocates a model's groups (zeroed): its embedding stage, blocks and head; the blocks
    /// in `blockStorage` (scratch files let them exceed physical memory).
    public static func allocate(_ layouts: ModelLayouts, blockStorage: HostStorage = .memory)
        throws(ModelError) -> (ParameterGroup, [ParameterGroup], ParameterGroup) {
        do {
            let blocks = try layouts.blocks.enumerated().map { i, layout throws(HostMemoryError) in
                try ParameterGroup(label: "block \(i)", layout: layout, storage: blockStorage)
            }
            return (try ParameterGroup(label: "embedding", layout: layouts.embedding), blocks,
                    try ParameterGroup(label: "head", layout: layouts.head))
        } catch {
            throw .memory(error.description)
        }
    }

    /// The fp32 elements of tensor `spec`.
    public func values(_ spec: ParameterSpec) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: storage.floats + spec.offset, count: spec.count)
    }
}
