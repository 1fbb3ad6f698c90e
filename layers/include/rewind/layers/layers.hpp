// The layers: parameters, initializers, Linear, Embedding, the RNN/LSTM/GRU cells, unroll and
// the stacked/bidirectional sequence layers.
#pragma once

#include <rewind/layers/cell.hpp>
#include <rewind/layers/cell_file.hpp>
#include <rewind/layers/checkpointed.hpp>
#include <rewind/layers/dataset.hpp>
#include <rewind/layers/dynamics.hpp>
#include <rewind/layers/gru_cell.hpp>
#include <rewind/layers/init.hpp>
#include <rewind/layers/linear.hpp>
#include <rewind/layers/lstm_cell.hpp>
#include <rewind/layers/module.hpp>
#include <rewind/layers/rnn_cell.hpp>
#include <rewind/layers/safetensors.hpp>
#include <rewind/layers/sequence.hpp>
#include <rewind/layers/summary.hpp>
#include <rewind/layers/unroll.hpp>
