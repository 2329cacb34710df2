// NVRTC for the CPU: a CUDA C program becomes C++ (kernel_prelude.inc in front; `extern
// __shared__` arrays pointed at the launch's dynamic shared memory; after the source, for each
// `__global__` kernel an entry that runs one of its threads from a packed argument array and a
// description of its parameters, static shared memory and whether it may reach __syncthreads,
// directly or through the functions it calls), compiled by clang into a shared
// object. That object is the "CUBIN": an ELF image that the stand-in's cuModuleLoadData loads.
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

#include <algorithm>
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

const char prelude[] =
#include "kernel_prelude.inc"
    ;

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

/// The source with comments blanked (newlines kept, so line numbers stay).
std::string withoutComments(const std::string &source) {
    std::string out = source;
    for (size_t i = 0; i < out.size(); ++i) {
        if (out[i] == '"' || out[i] == '\'') {
            char quote = out[i];
            for (++i; i < out.size() && out[i] != quote; ++i) {
                if (out[i] == '\\') ++i;
            }
        } else if (out.compare(i, 2, "//") == 0) {
            for (; i < out.size() && out[i] != '\n'; ++i) out[i] = ' ';
        } else if (out.compare(i, 2, "/*") == 0) {
            size_t end = out.find("*/", i + 2);
            end = end == std::string::npos ? out.size() : end + 2;
            for (; i < end; ++i) {
                if (out[i] != '\n') out[i] = ' ';
            }
            --i;
        }
    }
    return out;
}

bool identifierCharacter(char c) { return isalnum((unsigned char)c) || c == '_'; }

std::string trim(const std::string &text) {
    size_t start = text.find_first_not_of(" \t\r\n"), end = text.find_last_not_of(" \t\r\n");
    return start == std::string::npos ? "" : text.substr(start, end - start + 1);
}

/// The index just past the bracket that closes the one at `open`, or npos.
size_t matching(const std::string &text, size_t open, char opening, char closing) {
    int depth = 0;
    for (size_t i = open; i < text.size(); ++i) {
        if (text[i] == opening) ++depth;
        if (text[i] == closing && --depth == 0) return i + 1;
    }
    return std::string::npos;
}

/// Rewrites `extern __shared__ T name[];` to a pointer at the launch's dynamic shared memory.
std::string rewriteDynamicShared(const std::string &source) {
    std::string out;
    size_t at = 0;
    for (size_t found; (found = source.find("extern __shared__", at)) != std::string::npos;) {
        size_t end = source.find(';', found);
        if (end == std::string::npos) break;
        std::string declaration = trim(source.substr(found + 17, end - found - 17));  // "float scores[]"
        size_t bracket = declaration.rfind('[');
        std::string head = trim(declaration.substr(0, bracket));
        size_t nameStart = head.size();
        while (nameStart > 0 && identifierCharacter(head[nameStart - 1])) --nameStart;
        std::string type = trim(head.substr(0, nameStart)), name = head.substr(nameStart);
        out += source.substr(at, found - at);
        out += type + " *const " + name + " = (" + type + " *)zo_current->dynamic_shared;";
        at = end + 1;
    }
    return out + source.substr(at);
}

/// A static `__shared__` declaration in a kernel's body: where the statement stands in the
/// source, and the declaration without the keyword ("float shared[256]").
struct SharedDeclaration {
    size_t start, end;  // from "__shared__" to just past its ';'
    std::string declaration;
};

struct Kernel {
    std::string name;
    size_t lineStart = 0;                      // the start of the line declaring it
    std::vector<SharedDeclaration> shared;     // static __shared__ declarations in its body
    bool barriers = false;                     // whether it may reach __syncthreads
};

/// The names of the top-level functions of `source` that may reach __syncthreads: those whose
/// body names it, then, until nothing changes, those whose body calls one of them.
std::vector<std::string> barrierFunctions(const std::string &source) {
    std::vector<std::pair<std::string, std::string>> functions;  // name, body
    int depth = 0;
    for (size_t i = 0; i < source.size(); ++i) {
        if (source[i] == '}') --depth;
        if (source[i] != '{' || depth++ != 0) continue;
        size_t close = source.find_last_not_of(" \t\r\n", i - 1);
        if (close == std::string::npos || source[close] != ')') continue;
        int parentheses = 0;
        size_t open = close;
        for (; open > 0; --open) {
            if (source[open] == ')') ++parentheses;
            if (source[open] == '(' && --parentheses == 0) break;
        }
        size_t nameEnd = open;
        while (nameEnd > 0 && isspace((unsigned char)source[nameEnd - 1])) --nameEnd;
        size_t nameStart = nameEnd;
        while (nameStart > 0 && identifierCharacter(source[nameStart - 1])) --nameStart;
        size_t end = matching(source, i, '{', '}');
        functions.emplace_back(source.substr(nameStart, nameEnd - nameStart), source.substr(i, end - i));
    }
    std::vector<std::string> found = {"__syncthreads"};
    for (bool changed = true; changed;) {
        changed = false;
        for (const auto &[name, body] : functions) {
            if (std::find(found.begin(), found.end(), name) != found.end()) continue;
            for (const std::string &callee : found) {
                size_t at = body.find(callee + "(");
                if (at != std::string::npos && (at == 0 || !identifierCharacter(body[at - 1]))) {
                    found.push_back(name);
                    changed = true;
                    break;
                }
            }
        }
    }
    return found;
}

/// The `__global__` functions of `source` (comments already blanked).
std::vector<Kernel> kernels(const std::string &source) {
    std::vector<Kernel> found;
    std::vector<std::string> barriers = barrierFunctions(source);
    for (size_t at = 0; (at = source.find("__global__", at)) != std::string::npos; at += 10) {
        if ((at > 0 && identifierCharacter(source[at - 1])) || identifierCharacter(source[at + 10])) continue;
        size_t open = source.find('(', at);
        if (open == std::string::npos) break;
        size_t nameEnd = open;
        while (nameEnd > at && isspace((unsigned char)source[nameEnd - 1])) --nameEnd;
        size_t nameStart = nameEnd;
        while (nameStart > at && identifierCharacter(source[nameStart - 1])) --nameStart;
        Kernel kernel;
        kernel.name = source.substr(nameStart, nameEnd - nameStart);
        size_t newline = source.rfind('\n', at);
        kernel.lineStart = newline == std::string::npos ? 0 : newline + 1;
        size_t close = matching(source, open, '(', ')');
        size_t body = close == std::string::npos ? close : source.find_first_of("{;", close);
        if (body != std::string::npos && source[body] == '{') {
            size_t end = matching(source, body, '{', '}');
            std::string text = source.substr(body, end == std::string::npos ? std::string::npos : end - body);
            for (size_t s = 0; (s = text.find("__shared__", s)) != std::string::npos; s += 10) {
                if (s >= 7 && text.compare(s - 7, 6, "extern") == 0) continue;
                size_t semicolon = text.find(';', s);
                if (semicolon == std::string::npos) break;
                kernel.shared.push_back({body + s, body + semicolon + 1, trim(text.substr(s + 10, semicolon - s - 10))});
            }
        }
        kernel.barriers = std::find(barriers.begin(), barriers.end(), kernel.name) != barriers.end();
        if (!kernel.name.empty()) found.push_back(kernel);
    }
    return found;
}

/// `declaration` ("float shared[256]") as a reference to `member` of `storage`
/// ("float (&shared)[256] = storage.shared;").
std::string reference(const std::string &declaration, const std::string &storage) {
    size_t bracket = declaration.find('[');
    size_t nameEnd = bracket == std::string::npos ? declaration.size() : bracket;
    while (nameEnd > 0 && isspace((unsigned char)declaration[nameEnd - 1])) --nameEnd;
    size_t nameStart = nameEnd;
    while (nameStart > 0 && identifierCharacter(declaration[nameStart - 1])) --nameStart;
    std::string type = declaration.substr(0, nameStart), name = declaration.substr(nameStart, nameEnd - nameStart);
    std::string dimensions = bracket == std::string::npos ? "" : declaration.substr(bracket);
    return type + (dimensions.empty() ? "&" + name : "(&" + name + ")" + dimensions) + " = " + storage + "." + name + ";";
}

/// The kernels' static shared memory as one thread_local struct per kernel, declared before
/// it, each declaration in its body becoming a reference into it (so the executor can fill it
/// with NaN bytes before every block: a read before a write shows, as on a GPU it would give
/// whatever was there). Edits from the end, so earlier positions stay valid.
std::string placeSharedMemory(std::string source, const std::vector<Kernel> &list) {
    for (auto kernel = list.rbegin(); kernel != list.rend(); ++kernel) {
        if (kernel->shared.empty()) continue;
        std::string storage = "zo_shared_storage_" + kernel->name;
        for (auto shared = kernel->shared.rbegin(); shared != kernel->shared.rend(); ++shared) {
            source.replace(shared->start, shared->end - shared->start, reference(shared->declaration, storage));
        }
        std::string type = "struct zo_shared_" + kernel->name + " {";
        for (const SharedDeclaration &shared : kernel->shared) type += " " + shared.declaration + ";";
        source.insert(kernel->lineStart, type + " }; static thread_local zo_shared_" + kernel->name + " " + storage + "; ");
    }
    return source;
}

/// After the source: per kernel its thread entry, description and (with static shared memory)
/// the function that poisons it; the module's marker.
std::string epilogue(const std::vector<Kernel> &list) {
    std::ostringstream out;
    out << "\n#line 1 \"<stand-in entry points>\"\n";
    for (const Kernel &kernel : list) {
        std::string shared = "0";
        if (!kernel.shared.empty()) {
            shared = "(unsigned)sizeof(zo_shared_" + kernel.name + ")";
            out << "extern \"C\" __attribute__((visibility(\"default\"))) void zo_poison_" << kernel.name
                << "(void) { memset(&zo_shared_storage_" << kernel.name << ", 0xFF, " << shared << "); }\n";
        }
        out << "extern \"C\" __attribute__((visibility(\"default\"))) void zo_thread_" << kernel.name
            << "(void **a) { zo_invoke(" << kernel.name << ", a); }\n";
        out << "extern \"C\" __attribute__((visibility(\"default\"))) const zo_kernel_info zo_info_" << kernel.name
            << " = zo_describe(" << kernel.name << ", " << shared << ", " << (kernel.barriers ? 1 : 0) << ");\n";
    }
    out << "extern \"C\" __attribute__((visibility(\"default\"))) void zo_bind(void *state) "
           "{ zo_current = (zo_thread_state *)state; }\n";
    out << "extern \"C\" __attribute__((visibility(\"default\"))) const char zo_stand_in_module[] = \"" << moduleVersion << "\";\n";
    return out.str();
}

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
    std::string stripped = withoutComments(program.source);
    std::vector<Kernel> list = kernels(stripped);
    std::string text = "#line 1 \"<stand-in prelude>\"" + std::string(prelude) + "\n#line 1 \"" + program.name + "\"\n" +
                       rewriteDynamicShared(placeSharedMemory(stripped, list)) + epilogue(list);
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
