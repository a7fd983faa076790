# cmake -P check: the files of one layer include only headers of the layers it declares.
#
# Called by lookahead_layer() in CMakeLists.txt at build time, before the layer compiles:
#   -DLAYER=<target> -DDIRS=<its folders, relative to ROOT, '|'-separated> -DALLOWED=<folders, '|'-separated>
#   -DROOT=<source dir> -DSTAMP=<file written on success>
# A project include is `#include "top/.../file.h"` where top is one of the project's top-level code
# folders; its folder must be one of DIRS or one of ALLOWED (the layer's declared dependencies and
# theirs). Anything else stops the build with the file, the line and the layer to declare.
# System and third-party headers (<...>) are not checked.
cmake_minimum_required(VERSION 3.25)
foreach(var LAYER DIRS ALLOWED ROOT STAMP)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_layer_includes.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE "${STAMP}")  # a failed check must not leave an earlier success behind
string(REPLACE "|" ";" dirs "${DIRS}")
string(REPLACE "|" ";" allowed "${ALLOWED}")
list(APPEND allowed ${dirs})
set(project_tops bridge cli common moe net train)

set(files "")
foreach(dir IN LISTS dirs)
  file(GLOB dir_files "${ROOT}/${dir}/*.h" "${ROOT}/${dir}/*.cpp")
  list(APPEND files ${dir_files})
endforeach()
set(errors "")
foreach(file IN LISTS files)
  file(STRINGS "${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "\"([^\"]+)\"")
      continue()
    endif()
    set(header "${CMAKE_MATCH_1}")
    if(NOT header MATCHES "/")
      string(APPEND errors "  ${file}: #include \"${header}\": include project headers by their path from the root\n")
      continue()
    endif()
    string(REGEX MATCH "^[^/]+" top "${header}")
    if(NOT top IN_LIST project_tops)
      continue()
    endif()
    get_filename_component(folder "${header}" DIRECTORY)
    if(NOT folder IN_LIST allowed)
      file(RELATIVE_PATH rel "${ROOT}" "${file}")
      string(APPEND errors "  ${rel}: #include \"${header}\": layer ${LAYER} does not depend on ${folder}\n")
    endif()
  endforeach()
endforeach()
if(errors)
  message(FATAL_ERROR "includes across undeclared layers:\n${errors}"
                      "Either the include is wrong, or declare the dependency in ${LAYER}'s lookahead_layer() "
                      "in CMakeLists.txt (layers may not form a cycle).")
endif()
file(WRITE "${STAMP}" "ok\n")
