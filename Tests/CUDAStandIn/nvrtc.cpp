// NVRTC for the CPU: a CUDA C program becomes C++ (translate.cpp), compiled by clang into a
// shared object. That object is the "CUBIN": an ELF image that the stand-in's cuModuleLoadData
// loads. Compiled images are kept per process by options and source.
//
// Options: --gpu-architecture / -arch (sm_NN or compute_NN), --std / -std, --fmad (false:
// -ffp-contract=off, so a·b + c rounds twice as on the GPU), -D, -I, -default-device,
// -lineinfo / -G, --use_fast_math (ignored); anything else is refused as NVRTC refuses it.
// ZOTUNE_CUDA_STAND_IN_KEEP=1 keeps each compilation's folder (the C++ source, log, object).
#include "standin.h"

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

extern char **environ;

#ifndef ZO_STAND_IN_CXX
#define ZO_STAND_IN_CXX "clang++"
#endif

namespace standin {

namespace {

enum NVRTCResult : int {
    nvrtcSuccess = 0,
    nvrtcOutOfMemory = 1,
    nvrtcInvalidInput = 3,
    nvrtcInvalidProgram = 4,
    nvrtcInvalidOption = 5,
    nvrtcCompilation = 6,
};

struct Program {
    std::string source, name;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string log;
    std::vector<char> image;
    bool machineCode = false;  // sm_NN (CUBIN) rather than compute_NN (PTX only)
};

std::string readFile(const std::string &path) {
    std::ifstream file(path, std::ios::binary);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

void removeTree(const std::string &path) {
    if (DIR *directory = opendir(path.c_str())) {
        while (dirent *entry = readdir(directory)) {
            std::string name = entry->d_name;
            if (name != "." && name != "..") unlink((path + "/" + name).c_str());
        }
        closedir(directory);
    }
    rmdir(path.c_str());
}

/// Runs `arguments` with stdout and stderr into `logPath`; the exit status, or -1.
int run(const std::vector<std::string> &arguments, const std::string &logPath) {
    std::vector<char *> argv;
    for (const std::string &argument : arguments) argv.push_back(const_cast<char *>(argument.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t child;
    int spawned = posix_spawnp(&child, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) return -1;
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Compiled images by options and source: a program compiled again in this process is free.
std::mutex cacheLock;
std::map<std::string, std::vector<char>> &compiled() {
    static auto *images = new std::map<std::string, std::vector<char>>;
    return *images;
}

int compile(Program &program, int count, const char *const *options) {
    std::vector<std::string> flags;
    std::string standard = "-std=c++17", contraction = "-ffp-contract=on", architecture;
    for (int i = 0; i < count; ++i) {
        std::string option = options[i] ? options[i] : "";
        auto value = [&](const char *prefix) -> const char * {
            size_t length = strlen(prefix);
            return option.compare(0, length, prefix) == 0 ? option.c_str() + length : nullptr;
        };
        if (const char *v = value("--gpu-architecture=")) architecture = v;
        else if (const char *v = value("-arch=")) architecture = v;
        else if (option == "-arch" && i + 1 < count) architecture = options[++i];
        else if (const char *v = value("--std=")) standard = std::string("-std=") + v;
        else if (const char *v = value("-std=")) standard = std::string("-std=") + v;
        else if (const char *v = value("--fmad=")) contraction = strcmp(v, "false") == 0 ? "-ffp-contract=off" : "-ffp-contract=on";
        else if (const char *v = value("-fmad=")) contraction = strcmp(v, "false") == 0 ? "-ffp-contract=off" : "-ffp-contract=on";
        else if (value("-D") || value("-I")) flags.push_back(option);
        else if (const char *v = value("--define-macro=")) flags.push_back(std::string("-D") + v);
        else if (const char *v = value("--include-path=")) flags.push_back(std::string("-I") + v);
        else if (option == "-lineinfo" || option == "-G" || option == "--device-debug") flags.push_back("-g");
        else if (option == "-default-device" || option == "--device-as-default-execution-space" ||
                 option == "--use_fast_math" || option == "-use_fast_math") continue;
        else {
            program.log = "nvrtc: error: unrecognized option " + option + "\n";
            return nvrtcInvalidOption;
        }
    }
    bool sm = architecture.compare(0, 3, "sm_") == 0, compute = architecture.compare(0, 8, "compute_") == 0;
    if (!architecture.empty() && !sm && !compute) {
        program.log = "nvrtc: error: invalid value for --gpu-architecture: " + architecture + "\n";
        return nvrtcInvalidOption;
    }
    program.machineCode = sm;
    std::string text = translate(program.source, program.name);
    std::string key = standard + contraction;
    for (const std::string &flag : flags) key += "\n" + flag;
    for (const auto &header : program.headers) key += "\n" + header.first + "\n" + header.second;
    key += "\n" + text;
    {
        std::lock_guard<std::mutex> guard(cacheLock);
        auto hit = compiled().find(key);
        if (hit != compiled().end()) {
            program.image = hit->second;
            program.log.clear();
            return nvrtcSuccess;
        }
    }
    char folder[] = "/tmp/zotune-nvrtc-XXXXXX";
    if (!mkdtemp(folder)) {
        program.log = "nvrtc: error: cannot create a temporary folder\n";
        return nvrtcOutOfMemory;
    }
    std::string directory = folder;
    for (const auto &header : program.headers) std::ofstream(directory + "/" + header.first) << header.second;
    std::ofstream(directory + "/kernel.cpp") << text;
    const char *compiler = getenv("ZOTUNE_CUDA_STAND_IN_CXX");
    std::vector<std::string> command = {compiler ? compiler : ZO_STAND_IN_CXX, "-x", "c++", standard, "-O2", "-fPIC",
                                        "-shared", "-fvisibility=hidden", contraction, "-fno-math-errno",
                                        "-Wno-unused-function", "-I" + directory};
    command.insert(command.end(), flags.begin(), flags.end());
    command.insert(command.end(), {"-o", directory + "/kernel.so", directory + "/kernel.cpp"});
    int status = run(command, directory + "/log.txt");
    program.log = readFile(directory + "/log.txt");
    if (status == 0) {
        std::string image = readFile(directory + "/kernel.so");
        program.image.assign(image.begin(), image.end());
    }
    if (getenv("ZOTUNE_CUDA_STAND_IN_KEEP")) fprintf(stderr, "ZOTune CUDA stand-in: kept %s\n", folder);
    else removeTree(directory);
    if (status != 0 || program.image.empty()) {
        if (status < 0) program.log += "nvrtc stand-in: could not run " + command[0] + "\n";
        return nvrtcCompilation;
    }
    std::lock_guard<std::mutex> guard(cacheLock);
    compiled()[key] = program.image;
    return nvrtcSuccess;
}

}  // namespace

bool isStandInImage(const void *image, size_t *bytes) {
    const Elf64_Ehdr *header = (const Elf64_Ehdr *)image;
    if (!header || memcmp(header->e_ident, ELFMAG, SELFMAG) != 0 || header->e_ident[EI_CLASS] != ELFCLASS64) return false;
#if defined(__x86_64__)
    if (header->e_machine != EM_X86_64) return false;
#elif defined(__aarch64__)
    if (header->e_machine != EM_AARCH64) return false;
#endif
    if (header->e_type != ET_DYN) return false;
    *bytes = size_t(header->e_shoff) + size_t(header->e_shnum) * header->e_shentsize;
    return true;
}

}  // namespace standin

using standin::Program;

ZO_EXPORT int nvrtcVersion(int *major, int *minor) {
    if (!major || !minor) return standin::nvrtcInvalidInput;
    *major = 13;
    *minor = 0;
    return 0;
}

ZO_EXPORT const char *nvrtcGetErrorString(int result) {
    switch (result) {
    case 0: return "NVRTC_SUCCESS";
    case 1: return "NVRTC_ERROR_OUT_OF_MEMORY";
    case 3: return "NVRTC_ERROR_INVALID_INPUT";
    case 4: return "NVRTC_ERROR_INVALID_PROGRAM";
    case 5: return "NVRTC_ERROR_INVALID_OPTION";
    case 6: return "NVRTC_ERROR_COMPILATION";
    default: return "NVRTC_ERROR unknown";
    }
}

ZO_EXPORT int nvrtcCreateProgram(Program **program, const char *source, const char *name, int headers,
                                 const char *const *headerSources, const char *const *headerNames) {
    if (!program || !source || headers < 0 || (headers > 0 && (!headerSources || !headerNames))) {
        return standin::nvrtcInvalidInput;
    }
    Program *created = new Program;
    created->source = source;
    created->name = name ? name : "default_program";
    for (int i = 0; i < headers; ++i) created->headers.emplace_back(headerNames[i], headerSources[i]);
    *program = created;
    return 0;
}

ZO_EXPORT int nvrtcDestroyProgram(Program **program) {
    if (!program || !*program) return standin::nvrtcInvalidProgram;
    delete *program;
    *program = nullptr;
    return 0;
}

ZO_EXPORT int nvrtcCompileProgram(Program *program, int count, const char *const *options) {
    if (!program) return standin::nvrtcInvalidProgram;
    if (count < 0 || (count > 0 && !options)) return standin::nvrtcInvalidInput;
    program->image.clear();
    return standin::compile(*program, count, options);
}

ZO_EXPORT int nvrtcGetProgramLogSize(Program *program, size_t *bytes) {
    if (!program || !bytes) return standin::nvrtcInvalidInput;
    *bytes = program->log.size() + 1;
    return 0;
}

ZO_EXPORT int nvrtcGetProgramLog(Program *program, char *log) {
    if (!program || !log) return standin::nvrtcInvalidInput;
    memcpy(log, program->log.c_str(), program->log.size() + 1);
    return 0;
}

ZO_EXPORT int nvrtcGetCUBINSize(Program *program, size_t *bytes) {
    if (!program || !bytes) return standin::nvrtcInvalidInput;
    if (program->image.empty() || !program->machineCode) return standin::nvrtcInvalidProgram;
    *bytes = program->image.size();
    return 0;
}

ZO_EXPORT int nvrtcGetCUBIN(Program *program, char *cubin) {
    if (!program || !cubin) return standin::nvrtcInvalidInput;
    if (program->image.empty() || !program->machineCode) return standin::nvrtcInvalidProgram;
    memcpy(cubin, program->image.data(), program->image.size());
    return 0;
}

// The stand-in has no PTX: its "PTX" is a line saying so (no driver loads it).
ZO_EXPORT int nvrtcGetPTXSize(Program *program, size_t *bytes) {
    if (!program || !bytes) return standin::nvrtcInvalidInput;
    if (program->image.empty()) return standin::nvrtcInvalidProgram;
    *bytes = sizeof "// ZOTune CUDA stand-in: no PTX (use nvrtcGetCUBIN)\n";
    return 0;
}

ZO_EXPORT int nvrtcGetPTX(Program *program, char *ptx) {
    if (!program || !ptx) return standin::nvrtcInvalidInput;
    if (program->image.empty()) return standin::nvrtcInvalidProgram;
    strcpy(ptx, "// ZOTune CUDA stand-in: no PTX (use nvrtcGetCUBIN)\n");
    return 0;
}
