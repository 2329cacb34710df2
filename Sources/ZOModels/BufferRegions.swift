import ZOCore

extension DeviceBuffer {
    /// Consecutive views of `counts` floats each, from the start of this buffer: how a stage
    /// carves its workspace or tape from the same list of sizes that says how large it must be.
    func regions(_ counts: [Int]) -> [DeviceBuffer] {
        var offset = 0
        return counts.map { count in
            defer { offset += count }
            return floats(offset, count)
        }
    }
}
