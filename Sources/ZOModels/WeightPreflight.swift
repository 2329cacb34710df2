import ZOFormats

/// The layouts of a model's groups: the embedding stage, every block, the head.
public typealias ModelLayouts = (embedding: ParameterLayout, blocks: [ParameterLayout], head: ParameterLayout)

/// What a load checks from the weights' headers before it allocates the model, so that a config
/// whose sizes the weights do not have is an error naming the tensor (or the layer count), not
/// an allocation of those sizes that could take all of memory.
enum WeightPreflight {
    /// Checks that `checkpoint` holds every tensor of `layouts` (under `name(spec)`) with its shape.
    static func check(_ checkpoint: SafetensorsCheckpoint, blocks: Int, configPath: String,
                      layouts: () -> ModelLayouts, name: (ParameterSpec) -> String = \.name) throws(ModelError) {
        try forEachSpec(blocks: blocks, tensorsInFile: checkpoint.tensorCount, where: configPath, layouts) { spec throws(ModelError) in
            do throws(SafetensorsError) { try checkpoint.checkTensor(name(spec), shape: spec.shape) } catch { throw .weights(error) }
        }
    }

    /// Checks that `file` holds every tensor of `layouts` (under `name(spec)`) with its shape and
    /// a type it dequantizes.
    static func check(_ file: GGUFFile, blocks: Int, layouts: () -> ModelLayouts,
                      name: (ParameterSpec) -> String) throws(ModelError) {
        try forEachSpec(blocks: blocks, tensorsInFile: file.tensors.count, where: file.path, layouts) { spec throws(ModelError) in
            do throws(GGUFError) { try file.checkTensor(name(spec), shape: spec.shape) } catch { throw .gguf(error) }
        }
    }

    /// Runs `body` on every tensor of `layouts`, after bounding the layer count by the file's tensor
    /// count — each block has a tensor of its own, so a config claiming millions of layers fails
    /// before their layouts are built.
    private static func forEachSpec(blocks: Int, tensorsInFile: Int, where path: String, _ layouts: () -> ModelLayouts,
                                    _ body: (ParameterSpec) throws(ModelError) -> Void) throws(ModelError) {
        guard blocks <= tensorsInFile else {
            throw .config(path: path, reason: "num_hidden_layers = \(blocks), but the weights hold \(tensorsInFile) tensors")
        }
        let layouts = layouts()
        for layout in [layouts.embedding] + layouts.blocks + [layouts.head] {
            for spec in layout.specs { try body(spec) }
        }
    }
}
