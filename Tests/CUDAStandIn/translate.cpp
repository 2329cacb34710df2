// CUDA C as C++ for the CPU, for the stand-in's NVRTC: kernel_prelude.inc in front (CUDA's
// built-ins), comments blanked, `extern __shared__` arrays pointed at the launch's dynamic shared
// memory, each kernel's static `__shared__` variables gathered into one thread_local struct per
// kernel (which the executor fills with NaN bytes before every block), and after the source, for
// each `__global__` kernel: an entry that runs one of its threads from a packed argument array, a
// description of its parameters, static shared memory and whether it may reach __syncthreads
// (directly or through the functions it calls), and the function that poisons its shared memory.
// Text-level, for the CUDA C that ZOTune writes: one kernel declaration per line, `__shared__`
// declarations with one declarator each.
#include "standin.h"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace standin {

namespace {

const char prelude[] =
#include "kernel_prelude.inc"
    ;

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

}  // namespace

std::string translate(const std::string &source, const std::string &name) {
    std::string stripped = withoutComments(source);
    std::vector<Kernel> list = kernels(stripped);
    return "#line 1 \"<stand-in prelude>\"" + std::string(prelude) + "\n#line 1 \"" + name + "\"\n" +
           rewriteDynamicShared(placeSharedMemory(stripped, list)) + epilogue(list);
}

}  // namespace standin
