# Fails if a file of lib/LAYER includes a lib folder that is not LAYER itself or one of USES
# (lib/CMakeLists.txt declares them), naming the file, the line and what it may include.
#   cmake -DLAYER=eval -DUSES=base,model -DDIR=lib -DSTAMP=out.ok -P check_layers.cmake
cmake_minimum_required(VERSION 3.25)
string(REPLACE "," ";" USES "${USES}")
file(GLOB_RECURSE files ${DIR}/${LAYER}/*.cpp ${DIR}/${LAYER}/*.hpp)
file(GLOB folders LIST_DIRECTORIES true RELATIVE ${DIR} ${DIR}/*)
set(bad "")
foreach(f ${files})
  file(STRINGS ${f} includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"[a-z_]+/")
  foreach(line ${includes})
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([a-z_]+)/.*" "\\1" folder "${line}")
    if(NOT folder STREQUAL LAYER AND NOT folder IN_LIST USES AND folder IN_LIST folders)
      file(RELATIVE_PATH rel ${DIR}/.. ${f})
      string(APPEND bad "\n  ${rel}: ${line}")
    endif()
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "lib/${LAYER} may include only lib/${LAYER} and: ${USES} (lib/CMakeLists.txt);"
                      " these include another folder:${bad}")
endif()
file(WRITE ${STAMP} "")
