import Foundation
import ZOModels
import ZOTasks
import ZOTokenizers
import ZOTraining

/// Files a run reads: training data in every task's format, and what earlier runs left — a
/// checkpoint's state.json, a trajectory, metrics.jsonl, a PEFT adapter's adapter_config.json.
enum RunTargets {
    static let all = [
        FuzzTarget(name: "task-data", run: taskData),
        FuzzTarget(name: "checkpoint-state", run: checkpointState),
        FuzzTarget(name: "trajectory", run: trajectory),
        FuzzTarget(name: "metrics-jsonl", run: metrics),
        FuzzTarget(name: "peft-adapter", run: peftAdapter),
    ]

    /// One data file through every loader: language modelling (text or ids), the eight choice
    /// templates, both QA templates, the sentiment TSV, and SFT records (TRL's four formats)
    /// rendered by a real chat template.
    static func taskData(_ input: [UInt8]) {
        let path = Scratch.write(input, to: "data.jsonl")
        let tokenizer = TextTargets.tokenizers[4]
        _ = try? LMTask(path: path, maxLength: 64, vocabSize: 512) { tokenizer.encode($0, addSpecialTokens: true) }
        for template in ChoiceTemplate.allCases {
            _ = try? loadChoiceExamples(path: path, template: template, maxLength: 64, codec: tokenizer)
        }
        for template in QATemplate.allCases {
            _ = try? loadQAExamples(path: path, template: template, maxLength: 64, answerTokens: 8, codec: tokenizer)
        }
        _ = try? SentimentData(path: path, maxLength: 64, codec: tokenizer)
        for scope in SFTLossScope.allCases {
            _ = try? SFTData(path: path, encoder: SFTEncoder(tokenizer: tokenizer, template: template, scope: scope, maxLength: 64))
        }
    }

    static let template: ChatTemplate = {
        let path = Scratch.fixtures + "/sft/qwen2.5-generation.jinja"
        do { return try ChatTemplate.load(path: path) } catch { fatalError("the fixture template \(path) does not load: \(error)") }
    }()

    /// A checkpoint folder's `state.json`.
    static func checkpointState(_ input: [UInt8]) {
        Scratch.write(input, to: "checkpoint/" + Checkpoints.stateFile)
        _ = try? CheckpointState.load(directory: Scratch.directory + "/checkpoint")
    }

    /// A trajectory file: its header and every step's coefficients.
    static func trajectory(_ input: [UInt8]) {
        guard let trajectory = try? Trajectory(path: Scratch.write(input, to: "trajectory.zot")) else { return }
        for step in 0..<min(trajectory.steps, 1024) { _ = trajectory.gradients(step: step) }
    }

    /// A run folder's `metrics.jsonl`, as `zotune report` reads it and draws it on every axis.
    static func metrics(_ input: [UInt8]) {
        Scratch.write(input, to: "run/metrics.jsonl")
        guard let history = try? RunHistory(directory: Scratch.directory + "/run") else { return }
        for axis in HTMLReport.Axis.allCases { _ = HTMLReport(runs: [history], axis: axis).html() }
    }

    /// A PEFT adapter folder: `adapter_config.json` (the input) beside a real adapter's weights
    /// (r 4 on an OPT fixture's q_proj, v_proj and fc1).
    static func peftAdapter(_ input: [UInt8]) {
        let directory = Scratch.directory + "/adapter"
        if !FileManager.default.fileExists(atPath: directory + "/adapter_model.safetensors") {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try? FileManager.default.copyItem(atPath: Scratch.fixtures + "/peft/opt-tiny-f32-qv-fc1/adapter_model.safetensors",
                                              toPath: directory + "/adapter_model.safetensors")
        }
        Scratch.write(input, to: "adapter/adapter_config.json")
        _ = try? PEFTAdapter(directory: directory)
    }
}
