# Writes a tool's man page and its bash, zsh and fish completions from the tool's own option
# declarations (docs/cli.md): run by the build after the tool is linked, as
#   cmake -DTOOL=path/to/lm-x -DNAME=lm-x -DTEMPLATE=man/lm-x.1.in -DOUT=build-dir -P gen_docs.cmake
# The man page is the template with its "@OPTIONS@" comment line replaced by the OPTIONS section.
foreach(kind man bash zsh fish)
  execute_process(COMMAND ${TOOL} --lm-emit-docs ${kind} OUTPUT_VARIABLE text_${kind} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NAME} --lm-emit-docs ${kind} failed (${rc})")
  endif()
endforeach()

file(READ ${TEMPLATE} page)
string(FIND "${page}" "@OPTIONS@" at)
if(at LESS 0)
  message(FATAL_ERROR "${TEMPLATE}: no '.\\\" @OPTIONS@' line where the OPTIONS section goes")
endif()
string(SUBSTRING "${page}" 0 ${at} head)
string(FIND "${head}" "\n" line_start REVERSE)
math(EXPR line_start "${line_start} + 1")
string(SUBSTRING "${page}" 0 ${line_start} head)
string(SUBSTRING "${page}" ${at} -1 rest)
string(FIND "${rest}" "\n" line_end)
math(EXPR line_end "${line_end} + 1")
string(SUBSTRING "${rest}" ${line_end} -1 tail)

file(WRITE ${OUT}/man/${NAME}.1 "${head}${text_man}${tail}")
file(WRITE ${OUT}/completions/bash/${NAME} "${text_bash}")
file(WRITE ${OUT}/completions/zsh/_${NAME} "${text_zsh}")
file(WRITE ${OUT}/completions/fish/${NAME}.fish "${text_fish}")
