#pragma once
// The libtorch headers the trainer uses: the narrow set (module, AdamW, functional), not
// <torch/torch.h>, which takes twice as long to parse. Precompiled for train/*_torch.cpp (see the
// train block of CMakeLists.txt); no other file includes it, so nothing else compiles against torch.
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/init.h>
#include <torch/nn/module.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>
