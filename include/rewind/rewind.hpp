// rewind: reverse-mode autodiff on a tape, with recurrent layers built from primitive ops.
// The one header a program includes.
#pragma once

#include "rewind/autograd/diagnostics.hpp"
#include "rewind/autograd/functional.hpp"
#include "rewind/autograd/gradcheck.hpp"
#include "rewind/autograd/graphviz.hpp"
#include "rewind/autograd/html.hpp"
#include "rewind/autograd/schedule.hpp"
#include "rewind/autograd/spectra.hpp"
#include "rewind/autograd/tape.hpp"
#include "rewind/layers/layers.hpp"
#include "rewind/optim/checkpoint.hpp"
#include "rewind/optim/distributed.hpp"
#include "rewind/optim/optimizer.hpp"
