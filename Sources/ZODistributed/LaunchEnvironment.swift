/// Where this process stands in a parallel launch, from the launcher's environment: Open MPI's
/// `mpirun` (OMPI_COMM_WORLD_*), or Slurm's `srun` (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID).
public struct LaunchEnvironment: Sendable, Equatable {
    public let rank: Int
    public let size: Int
    /// The rank among the processes on this node (which GPU to take), and their number.
    public let localRank: Int
    public let localSize: Int
    /// "mpirun" or "srun".
    public let launcher: String

    public init(rank: Int, size: Int, localRank: Int, localSize: Int, launcher: String) {
        self.rank = rank
        self.size = size
        self.localRank = localRank
        self.localSize = localSize
        self.launcher = launcher
    }

    /// The launch `environment` describes, or nil for a process started alone.
    public static func detect(_ environment: [String: String]) -> LaunchEnvironment? {
        func number(_ name: String) -> Int? { environment[name].flatMap { Int($0) } }
        if let rank = number("OMPI_COMM_WORLD_RANK"), let size = number("OMPI_COMM_WORLD_SIZE") {
            return LaunchEnvironment(rank: rank, size: size, localRank: number("OMPI_COMM_WORLD_LOCAL_RANK") ?? 0,
                                     localSize: number("OMPI_COMM_WORLD_LOCAL_SIZE") ?? 1, launcher: "mpirun")
        }
        if let rank = number("SLURM_PROCID"), let size = number("SLURM_NTASKS"), environment["SLURM_STEP_ID"] != nil {
            // SLURM_TASKS_PER_NODE: "4" or "4(x2),3"; this node's count is not in it by name, so the
            // local size is taken as the largest count (for dividing the cores it errs on the safe side).
            let perNode = (environment["SLURM_TASKS_PER_NODE"] ?? "1").split(separator: ",")
                .compactMap { Int($0.prefix { $0.isNumber }) }.max() ?? 1
            return LaunchEnvironment(rank: rank, size: size, localRank: number("SLURM_LOCALID") ?? 0, localSize: perNode, launcher: "srun")
        }
        return nil
    }
}
