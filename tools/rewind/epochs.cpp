#include "epochs.hpp"

#include <sstream>

namespace rwd::cli {

Epochs::Epochs(const DataTask& data, long epochs, Index rows, std::uint64_t seed)
    : data_(data),
      epochs_(epochs),
      per_epoch_(data.size(DataTask::Part::train) / rows),
      rows_(rows),
      seed_(seed) {
  if (per_epoch_ == 0)
    throw UsageError(fmt::format("a global batch of {} rows is more than the {} training images",
                                 rows, data.size(DataTask::Part::train)));
}

Batch Epochs::batch(long step) {
  const long epoch = (step - 1) / per_epoch_, k = (step - 1) % per_epoch_;
  if (epoch != order_epoch_) {
    order_ = layers::epoch_order(data_.size(DataTask::Part::train), seed_, epoch);
    order_epoch_ = epoch;
  }
  return data_.examples(DataTask::Part::train,
                        std::span(order_).subspan(static_cast<std::size_t>(k * rows_),
                                                  static_cast<std::size_t>(rows_)));
}

void Epochs::add(double loss, double accuracy) {
  loss_ += loss;
  accuracy_ += accuracy;
  ++steps_;
}

EpochPoint Epochs::close(long epoch, double train_seconds, double validation, double eval_seconds,
                         const std::vector<Parameter<float>*>& params, bool& best) {
  const auto n = static_cast<double>(std::max<long>(1, steps_));
  const EpochPoint p{.epoch = epoch,
                     .loss = loss_ / n,
                     .accuracy = accuracy_ / n,
                     .validation = validation,
                     .train_seconds = train_seconds,
                     .eval_seconds = eval_seconds};
  best = validation >= 0 && validation > best_accuracy_;
  if (best) {
    best_accuracy_ = validation;
    best_epoch_ = epoch;
    best_.resize(params.size());
    for (std::size_t k = 0; k < params.size(); ++k) best_[k] = params[k]->value;
  }
  history_.push_back(p);
  loss_ = accuracy_ = 0;
  steps_ = 0;
  return p;
}

long Epochs::restore_best(const std::vector<Parameter<float>*>& params) const {
  if (best_.empty()) return 0;
  for (std::size_t k = 0; k < params.size(); ++k) {
    params[k]->value = best_[k];
    params[k]->mark_changed();
  }
  return best_epoch_;
}

void Epochs::save(optim::TrainingState<float>& st,
                  const std::vector<Parameter<float>*>& params) const {
  st.info["data.epoch"] = std::to_string(st.step / per_epoch_);
  st.info["data.position"] = std::to_string(st.step % per_epoch_ * rows_);
  st.info["epoch_loss"] = fmt::format("{}", loss_);
  st.info["epoch_acc"] = fmt::format("{}", accuracy_);
  st.info["epoch_steps"] = std::to_string(steps_);
  st.info["epoch_began"] = fmt::format("{}", began_);
  st.info["best_accuracy"] = fmt::format("{}", best_accuracy_);
  st.info["best_epoch"] = std::to_string(best_epoch_);
  std::string lines;
  for (const EpochPoint& p : history_)
    lines += fmt::format("{} {} {} {} {} {}\n", p.epoch, p.loss, p.accuracy, p.validation,
                         p.train_seconds, p.eval_seconds);
  st.info["epochs"] = lines;
  for (std::size_t k = 0; k < best_.size(); ++k)
    st.tensors.emplace_back("best/" + params[k]->name, best_[k]);
}

void Epochs::restore(const optim::TrainingState<float>& st,
                     const std::vector<Parameter<float>*>& params) {
  const auto num = [&](const char* key) { return std::strtod(st.at(key).c_str(), nullptr); };
  if (std::atol(st.at("data.epoch").c_str()) != st.step / per_epoch_ ||
      std::atol(st.at("data.position").c_str()) != st.step % per_epoch_ * rows_)
    throw UsageError("cannot resume: the checkpoint's data cursor does not fit this run's epochs");
  loss_ = num("epoch_loss");
  accuracy_ = num("epoch_acc");
  steps_ = std::atol(st.at("epoch_steps").c_str());
  began_ = num("epoch_began");
  best_accuracy_ = num("best_accuracy");
  best_epoch_ = std::atol(st.at("best_epoch").c_str());
  history_.clear();
  std::istringstream lines(st.at("epochs"));
  for (EpochPoint p; lines >> p.epoch >> p.loss >> p.accuracy >> p.validation >> p.train_seconds >>
                     p.eval_seconds;)
    history_.push_back(p);
  best_.clear();
  if (best_epoch_ > 0) {
    for (const Parameter<float>* q : params) best_.push_back(st.tensor("best/" + q->name));
  }
}

}  // namespace rwd::cli
