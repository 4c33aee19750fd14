# Turns a botocore service-2.json into a C++ source file exposing it as a string.
file(READ "${IN}" content)
string(LENGTH "${content}" len)
set(chunks "")
set(pos 0)
# Raw string literals are split to stay well under compiler limits.
while(pos LESS len)
  string(SUBSTRING "${content}" ${pos} 60000 piece)
  string(APPEND chunks "R\"berthmodel(${piece})berthmodel\"\n")
  math(EXPR pos "${pos} + 60000")
endwhile()
file(WRITE "${OUT}" "// Generated from a botocore service model; do not edit.\n"
  "#include <string_view>\n"
  "namespace berth::models {\n"
  "extern const std::string_view k_${NAME};\n"
  "static const char k_${NAME}_data[] =\n${chunks};\n"
  "const std::string_view k_${NAME}(k_${NAME}_data, sizeof(k_${NAME}_data) - 1);\n"
  "}  // namespace berth::models\n")
